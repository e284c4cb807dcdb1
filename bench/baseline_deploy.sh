#!/bin/bash
# The lean baseline of a deploy, for bench_cluster.py: OpenSSH rsync of the project, then
# `make -C remap` with the host's venv, over one host. Run N of these at once with
#   xargs -P N -L 1 bash bench/baseline_deploy.sh SOURCE KEY KNOWN_HOSTS VENV
# reading "ADDRESS PORT WORKDIR" lines on stdin. Strict host-key checking, as mae-launch.
set -eu
source_dir=$1 key=$2 known_hosts=$3 venv=$4 address=$5 port=$6 workdir=$7
ssh_opts=(-i "$key" -o UserKnownHostsFile="$known_hosts" -o StrictHostKeyChecking=yes
          -o BatchMode=yes -o ConnectTimeout=10 -p "$port")
rsync -a --exclude=.git --exclude=.venv --filter=':- .gitignore' \
    -e "ssh ${ssh_opts[*]}" "$source_dir/" "root@$address:$workdir/"
ssh "${ssh_opts[@]}" "root@$address" "cd $(printf %q "$workdir") && . $(printf %q "$venv")/bin/activate && make -s -C remap >/dev/null"
