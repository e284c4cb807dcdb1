#!/usr/bin/env bash
# The lean baseline of bench/bench_deploy.py, for one host: OpenSSH rsync of the project tree, then
# `make -C remap` over a second OpenSSH connection. Arguments: ADDRESS PORT KEY KNOWN_HOSTS SRC WORKDIR VENV
set -euo pipefail
addr=$1 port=$2 key=$3 known=$4 src=$5 work=$6 venv=$7
opts=(-o BatchMode=yes -o StrictHostKeyChecking=yes -o "UserKnownHostsFile=$known" -i "$key" -p "$port")
rsync -a --delete --exclude=/remap/build/ --exclude="/remap/*.so" --exclude="/.mae-launch-*" -e "ssh ${opts[*]}" "$src/" "$addr:$work/"
ssh "${opts[@]}" "$addr" "cd '$work' && . '$venv/bin/activate' && make -s -C remap"
