"""Rendering: golden poprun / single-process scripts, torchrun plans, and quoting that holds.

Golden files live in tests/golden/; regenerate them with MAE_LAUNCH_REGEN_GOLDEN=1 after an
intended change, and review the diff.
"""
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from launcher.errors import PlanError
from launcher.inventory import HostPath, load_inventory
from launcher.plan import plan_job
from launcher.render import q, qpath, render_template

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
INV = {name: load_inventory(ROOT / "inventories" / f"{name}.yml") for name in ("local", "pod16", "pod64", "gpu-cluster")}
ENGINE_OPTIONS = '{"opt.enableMultiAccessCopies":"false","target.hostSyncTimeout":"3000"}'


def words(command: str) -> list:
    """The argv bash itself makes of a rendered command (continuations, quotes, "$HOME" and all)."""
    res = subprocess.run(["bash", "-c", 'eval "printf \'%s\\0\' $1"', "split", command],
                         capture_output=True, check=True)  # bytes: no newline translation
    return res.stdout.decode().split("\0")[:-1]


def check_golden(name: str, text: str):
    path = GOLDEN / name
    if os.environ.get("MAE_LAUNCH_REGEN_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"missing {path}: run with MAE_LAUNCH_REGEN_GOLDEN=1"
    assert text == path.read_text(), f"{name} changed; if intended, regenerate with MAE_LAUNCH_REGEN_GOLDEN=1"


def test_pod64_poprun_matches_the_reference_invocation():
    plan = plan_job(INV["pod64"], "pretrain", "golden")
    assert plan.mode == "poprun" and [hp.host.name for hp in plan.hosts] == ["pod64-host0"]
    hp = plan.controller
    check_golden("pod64_pretrain.sh", hp.script)
    assert words(hp.command) == [
        "poprun", "-vv", "--host", "pod64-host0,pod64-host1,pod64-host2,pod64-host3",
        "--num-instances=4", "--num-replicas=16", "--ipus-per-replica=4",
        "--update-partition=yes", "--remove-partition=no",
        "--vipu-server-host=pod64-vipu", "--vipu-partition=pod64", "--vipu-allocation=cluster-pod64",
        "--vipu-server-timeout=3600", "--executable-cache-path=/localdata/mae/exec_cache",
        "--mpi-global-args=--mca oob_tcp_if_include enp65s0f0np0 --mca btl_tcp_if_include enp65s0f0np0",
        "--mpi-local-args=-x MAE_LAUNCH_RUN_ID -x MAE_LAUNCH_TOKEN -x MAE_LAUNCH_JOB -x MAE_LAUNCH_HOST -x OPAL_PREFIX -x LD_LIBRARY_PATH -x PATH -x PYTHONPATH -x CPATH "
        "-x IPUOF_VIPU_API_TIMEOUT=3600 -x POPLAR_LOG_LEVEL=WARN -x POPLAR_SDK_ENABLED -x POPLAR_ENGINE_OPTIONS",
        "python3", "-m", "mae.pretrain", "--config", "vit_base_pod64",
        "--data_path", "/localdata/datasets/imagenet1k", "--output_dir", "/localdata/mae/output/golden/pretrain"]
    assert hp.env["POPLAR_ENGINE_OPTIONS"] == ENGINE_OPTIONS
    assert f"export POPLAR_ENGINE_OPTIONS={shlex.quote(ENGINE_OPTIONS)}\n" in hp.script
    assert plan.placement == {f"pod64-host{i}": [i] for i in range(4)} and plan.world_size == 4
    assert plan.checkpoint == "/localdata/mae/output/golden/pretrain/checkpoint.pth"


def test_pod16_is_one_process_with_the_vipu_environment():
    plan = plan_job(INV["pod16"], "pretrain", "golden")
    (hp,) = plan.hosts
    check_golden("pod16_pretrain.sh", hp.script)
    assert plan.mode == "single" and "poprun" not in hp.script
    assert hp.env["IPUOF_VIPU_API_HOST"] == "pod16-vipu" and hp.env["IPUOF_VIPU_API_PARTITION_ID"] == "pod16"
    assert words(hp.command) == ["python3", "-m", "mae.pretrain", "--config", "vit_base_pod16",
                                       "--data_path", "/localdata/datasets/imagenet1k",
                                       "--executable_cache_path", "/localdata/mae/exec_cache",
                                       "--output_dir", "/localdata/mae/output/golden/pretrain"]
    assert hp.rank_logs == {0: "/localdata/mae/mae-launch/runs/golden/pretrain.rank0.log"}


def test_consumed_checkpoints_become_finetune_and_resume_flags():
    ft = plan_job(INV["pod16"], "finetune", "r1")
    assert ft.program[-2:] == ["--finetune", "/localdata/mae/output/r1/pretrain/checkpoint.pth"]
    va = plan_job(INV["pod16"], "validate", "r2", consume_run="r1")
    assert va.program[-2:] == ["--resume", "/localdata/mae/output/r1/finetune/checkpoint.pth"]
    explicit = plan_job(INV["pod16"], "finetune", "r3", consume="/ckpt/mae_pretrain_vit_base.pth")
    assert explicit.consumed_checkpoint == "/ckpt/mae_pretrain_vit_base.pth" and explicit.consumes is None
    resumed = plan_job(INV["pod16"], "pretrain", "r1", resume=True)
    assert resumed.program[-1] == "--resume"


def test_torchrun_runs_on_every_host_with_the_rendezvous_on_the_controller():
    plan = plan_job(INV["gpu-cluster"], "pretrain", "r1")
    assert [hp.host.name for hp in plan.hosts] == ["gpu01", "gpu02"] and plan.world_size == 16
    for node, hp in enumerate(plan.hosts):
        argv = words(hp.command)
        assert argv[:8] == ["torchrun", "--nnodes=2", "--nproc_per_node=8", f"--node_rank={node}",
                            "--master_addr=gpu01", "--master_port=29500", "--rdzv_id=r1", "--max_restarts=0"]
        assert hp.ranks == list(range(8 * node, 8 * node + 8)) and len(hp.rank_logs) == 8
        assert hp.env["GLOO_SOCKET_IFNAME"] == "eth0" == hp.env["NCCL_SOCKET_IFNAME"]
        assert hp.script_path == f"~/mae-launch/runs/r1/pretrain.{hp.host.name}.sh"
        assert 'cd -- "$HOME"/mae-launch\n' in hp.script
        assert "replace-me" not in hp.script and hp.secret_names == ["WANDB_API_KEY"]
    assert plan.secrets_file_text() == "WANDB_API_KEY=replace-me\n"


def test_rendering_is_pure_and_every_script_parses():
    for name, inv in INV.items():
        for job in inv.jobs:
            first, again = plan_job(inv, job, "r1"), plan_job(inv, job, "r1")
            assert [h.script for h in first.hosts] == [h.script for h in again.hosts]
            for hp in first.hosts:
                res = subprocess.run(["bash", "-n"], input=hp.script, text=True, capture_output=True)
                assert res.returncode == 0, (name, job, res.stderr)


@pytest.mark.parametrize("run_id", ["", "-rf", "../x", "a b", "a/b", "x" * 101, ".hidden"])
def test_bad_run_ids_are_refused(run_id):
    with pytest.raises(PlanError, match="run id"):
        plan_job(INV["local"], "pretrain", run_id)


def test_quoting_filters():
    assert q("a b") == "'a b'" and q(3) == "3" and q("") == "''" and q(True) == "true"
    assert q(HostPath("~/x y")) == "\"$HOME\"/'x y'" and qpath("~") == '"$HOME"' and q("~/x") == "'~/x'"
    with pytest.raises(ValueError):
        q(None)
    with pytest.raises(Exception, match="not a shell variable name"):
        render_template("secrets.env.j2", secrets={"A=1;touch x;B": "v"})
    with pytest.raises(Exception):
        render_template("program.j2")  # StrictUndefined: a missing variable is an error
