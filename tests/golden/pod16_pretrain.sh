#!/usr/bin/env bash
# mae-launch job script (rendered from templates/job.sh.j2; do not edit): one job of one run on one host.
# Writes into its run directory: <job>.<host>.log (this script and the launcher), <job>.rank<N>.log
# (one per rank when the launcher can separate them), <job>.<host>.pid and <job>.<host>.exit (exit status).
set -euo pipefail
umask 077  # run files (logs, pid, exit status) are the login user's alone
MAE_LAUNCH_RUN_ID=golden
MAE_LAUNCH_JOB=pretrain
MAE_LAUNCH_HOST=pod16-host0
export MAE_LAUNCH_RUN_ID MAE_LAUNCH_JOB MAE_LAUNCH_HOST
run_dir=/localdata/mae/mae-launch/runs/golden
exit_file=/localdata/mae/mae-launch/runs/golden/pretrain.pod16-host0.exit
secrets_file=
# the secrets file goes whatever happens, even when this script fails before it reads it
trap 'rc=$?; if [ -n "$secrets_file" ]; then rm -f -- "$secrets_file"; fi; printf "%s\n" "$rc" >"$exit_file.tmp" && mv -f -- "$exit_file.tmp" "$exit_file"' EXIT
mkdir -p -- "$run_dir"
rm -f -- "$exit_file"
exec >>/localdata/mae/mae-launch/runs/golden/pretrain.pod16-host0.log 2>&1
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
printf '%s\n' "$$" >/localdata/mae/mae-launch/runs/golden/pretrain.pod16-host0.pid
printf 'mae-launch: run %s job %s host %s pid %s started %s\n' \
    "$MAE_LAUNCH_RUN_ID" "$MAE_LAUNCH_JOB" "$MAE_LAUNCH_HOST" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
cd -- /localdata/mae/mae-launch
set +u
source /opt/poplar_sdk/poplar/enable.sh
source /opt/poplar_sdk/popart/enable.sh
source /localdata/mae/venv/bin/activate
set -u
export POPLAR_ENGINE_OPTIONS='{"opt.enableMultiAccessCopies":"false","target.hostSyncTimeout":"3000"}'
export IPUOF_VIPU_API_HOST=pod16-vipu
export IPUOF_VIPU_API_PARTITION_ID=pod16
export IPUOF_VIPU_API_TIMEOUT=3600
mkdir -p -- /localdata/mae/output/golden/pretrain
python3 -m mae.pretrain --config vit_base_pod16 --data_path /localdata/datasets/imagenet1k --executable_cache_path /localdata/mae/exec_cache --output_dir /localdata/mae/output/golden/pretrain >/localdata/mae/mae-launch/runs/golden/pretrain.rank0.log 2>&1
