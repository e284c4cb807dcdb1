#!/usr/bin/env bash
# mae-launch job script (rendered from templates/job.sh.j2; do not edit): one job of one run on one host.
# Writes into its run directory: <job>.<host>.log (this script and the launcher), <job>.rank<N>.log
# (one per rank when the launcher can separate them), <job>.<host>.pid and <job>.<host>.exit (exit status).
set -euo pipefail
umask 077  # run files (logs, pid, exit status) are the login user's alone
MAE_LAUNCH_RUN_ID=golden
MAE_LAUNCH_JOB=pretrain
MAE_LAUNCH_HOST=pod64-host0
export MAE_LAUNCH_RUN_ID MAE_LAUNCH_JOB MAE_LAUNCH_HOST
run_dir=/localdata/mae/mae-launch/runs/golden
exit_file=/localdata/mae/mae-launch/runs/golden/pretrain.pod64-host0.exit
secrets_file=
# the secrets file goes whatever happens, even when this script fails before it reads it
trap 'rc=$?; if [ -n "$secrets_file" ]; then rm -f -- "$secrets_file"; fi; printf "%s\n" "$rc" >"$exit_file.tmp" && mv -f -- "$exit_file.tmp" "$exit_file"' EXIT
mkdir -p -- "$run_dir"
rm -f -- "$exit_file"
exec >>/localdata/mae/mae-launch/runs/golden/pretrain.pod64-host0.log 2>&1
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
printf '%s\n' "$$" >/localdata/mae/mae-launch/runs/golden/pretrain.pod64-host0.pid
printf 'mae-launch: run %s job %s host %s pid %s started %s\n' \
    "$MAE_LAUNCH_RUN_ID" "$MAE_LAUNCH_JOB" "$MAE_LAUNCH_HOST" "$$" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
cd -- /localdata/mae/mae-launch
set +u
source /opt/poplar_sdk/poplar/enable.sh
source /opt/poplar_sdk/popart/enable.sh
source /localdata/mae/venv/bin/activate
set -u
export POPLAR_ENGINE_OPTIONS='{"opt.enableMultiAccessCopies":"false","target.hostSyncTimeout":"3000"}'
export TCP_IF_INCLUDE=enp65s0f0np0
mkdir -p -- /localdata/mae/output/golden/pretrain
poprun \
    -vv \
    --host pod64-host0,pod64-host1,pod64-host2,pod64-host3 \
    --num-instances=4 \
    --num-replicas=16 \
    --ipus-per-replica=4 \
    --update-partition=yes \
    --remove-partition=no \
    --vipu-server-host=pod64-vipu \
    --vipu-partition=pod64 \
    --vipu-allocation=cluster-pod64 \
    --vipu-server-timeout=3600 \
    --executable-cache-path=/localdata/mae/exec_cache \
    --mpi-global-args='--mca oob_tcp_if_include enp65s0f0np0 --mca btl_tcp_if_include enp65s0f0np0' \
    --mpi-local-args='-x MAE_LAUNCH_RUN_ID -x MAE_LAUNCH_TOKEN -x MAE_LAUNCH_JOB -x MAE_LAUNCH_HOST -x OPAL_PREFIX -x LD_LIBRARY_PATH -x PATH -x PYTHONPATH -x CPATH -x IPUOF_VIPU_API_TIMEOUT=3600 -x POPLAR_LOG_LEVEL=WARN -x POPLAR_SDK_ENABLED -x POPLAR_ENGINE_OPTIONS' \
    python3 -m mae.pretrain --config vit_base_pod64 --data_path /localdata/datasets/imagenet1k --output_dir /localdata/mae/output/golden/pretrain
