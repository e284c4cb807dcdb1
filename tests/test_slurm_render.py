"""Slurm inventories and batch scripts: validation with file:line errors, and what sbatch is given."""
import subprocess
from pathlib import Path

import pytest

from launcher.errors import InventoryError
from launcher.inventory import load_inventory, parse_inventory
from launcher.plan import plan_job
from launcher.render import sbatchw

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "inventories" / "slurm-gpu.yml"
CONFIGS = {"vit_base_gpu": {"job": "pretrain"}, "vit_base_finetune": {"job": "finetune"},
           "digits_pretrain": {"job": "pretrain"}}

SMALL = """\
name: s
launcher: torchrun
scheduler: slurm
slurm:
  nodes: 2
env:
  TOKEN: {value: hunter2-secret, secret: true}
jobs:
  pretrain:
    config: digits_pretrain
"""


def _parse(text):
    return parse_inventory(text, "/tmp/inv.yml", config_names=CONFIGS)


def _sbatch_lines(script):
    return [line for line in script.splitlines() if line.startswith("#SBATCH")]


def test_gpu_example_maps_every_key_to_sbatch():
    inv = load_inventory(GPU, config_names=CONFIGS)
    assert inv.is_slurm and [h.name for h in inv.hosts] == ["login01"]
    plan = plan_job(inv, "pretrain", "r1")
    assert plan.mode == "slurm" and plan.world_size == 16
    assert plan.placement == {"node0": list(range(8)), "node1": list(range(8, 16))}
    hp = plan.controller
    assert _sbatch_lines(hp.script) == [
        "#SBATCH --job-name=mae-pretrain-r1", "#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1",
        "#SBATCH --partition=gpu", "#SBATCH --account=vision", "#SBATCH --qos=normal",
        "#SBATCH --time=2-00:00:00", "#SBATCH --gpus-per-node=8", "#SBATCH --gres=gpu:8",
        "#SBATCH --cpus-per-task=64", "#SBATCH --mem=480G", "#SBATCH --exclusive",
        "#SBATCH --constraint=a100", "#SBATCH --output=pretrain.slurm.log", "#SBATCH --open-mode=append",
        "#SBATCH --mail-type=FAIL"]
    assert hp.script.startswith("#!/usr/bin/env bash\n#SBATCH")
    # srun does not inherit --cpus-per-task since Slurm 22.05: said on its line and in its variable
    assert ("srun --kill-on-bad-exit=1 --nodes=\"$SLURM_JOB_NUM_NODES\" --ntasks-per-node=1 \\\n"
            "    --cpus-per-task=64 \\\n") in hp.script
    assert "\nexport SRUN_CPUS_PER_TASK=64 " in hp.script
    assert inv.slurm.build_on == "compute"
    assert "--rdzv_endpoint=\"$MAE_LAUNCH_MASTER_ADDR\":29500" in hp.script
    assert "--nproc_per_node=8" in hp.script  # nproc_per_node defaults to gpus_per_node
    assert hp.env["NCCL_SOCKET_IFNAME"] == "ib0" and hp.env["GLOO_SOCKET_IFNAME"] == "ib0"
    assert "WANDB_API_KEY" in hp.secret_names and "replace-me" not in hp.script
    subprocess.run(["bash", "-n"], input=hp.script, text=True, check=True)


def test_no_hosts_means_submitting_from_this_machine_and_static_rendezvous_uses_node_ids():
    inv = _parse(SMALL)
    (host,) = inv.hosts
    assert host.is_local and host.name == "submit"
    hp = plan_job(inv, "pretrain", "r2").controller
    assert "--node_rank=\"$SLURM_NODEID\"" in hp.script and "--master_port=29500" in hp.script
    assert "hunter2" not in hp.script and "--partition" not in hp.script
    assert "#SBATCH --nodes=2" in hp.script


def test_a_finetune_gets_the_pretraining_checkpoint():
    inv = load_inventory(GPU, config_names=CONFIGS)
    plan = plan_job(inv, "finetune", "r3")
    assert plan.consumed_checkpoint == "/checkpoints/mae/r3/pretrain/checkpoint.pth"
    assert "--finetune /checkpoints/mae/r3/pretrain/checkpoint.pth" in plan.controller.script


ERRORS = [
    ("  nodes: 2\n", "  nodes: 0\n", 5, "slurm.nodes", "greater than or equal to 1"),
    ("  nodes: 2\n", "  nodes: 2\n  time: 'one day'\n", 6, "slurm.time", "not a Slurm time limit"),
    ("  nodes: 2\n", "  nodes: 2\n  partition: 'gpu --uid=0'\n", 6, "slurm.partition", "not a plain name"),
    ("  nodes: 2\n", "  nodes: 2\n  extra_sbatch_args: ['--comment=a b']\n", 6, "slurm.extra_sbatch_args[0]", "one sbatch option"),
    ("  nodes: 2\n", "  nodes: 2\n  extra_sbatch_args: ['--x=#1']\n", 6, "slurm.extra_sbatch_args[0]", "one sbatch option"),
    ("  nodes: 2\n", "  nodes: 2\n  constraint: 'a100 || v100'\n", 6, "slurm.constraint", "not a Slurm constraint"),
    ("  nodes: 2\n", "  nodez: 2\n", 5, "slurm.nodez", "allowed keys here are account, build_on, constraint"),
    ("launcher: torchrun\n", "launcher: poprun\n", 2, "launcher", "poprun under Slurm is not supported"),
    ("scheduler: slurm\n", "scheduler: pbs\n", 3, "scheduler", "'ssh' or 'slurm'"),
    ("scheduler: slurm\n", "", 3, "slurm", "needs `scheduler: slurm`"),
    ("slurm:\n", "hosts: [a, b]\nslurm:\n", 4, "hosts", "one host, the submit host"),
    ("    config: digits_pretrain\n", "    config: digits_pretrain\n    replicas: 3\n", 11, "jobs.pretrain.replicas", "2 Slurm nodes x nproc_per_node 1"),
]


@pytest.mark.parametrize("old, new, line, key, words", ERRORS, ids=[e[3] + ":" + e[4][:12] for e in ERRORS])
def test_errors_point_at_file_line_and_key(old, new, line, key, words):
    assert old in SMALL
    with pytest.raises(InventoryError) as info:
        _parse(SMALL.replace(old, new, 1))
    message = str(info.value)
    assert message.startswith(f"/tmp/inv.yml:{line}: {key}: "), message
    assert words in message, message
    assert "hunter2" not in message


def test_ssh_inventories_still_need_hosts():
    text = "name: s\nlauncher: torchrun\njobs:\n  pretrain:\n    config: digits_pretrain\n"
    with pytest.raises(InventoryError, match="hosts: this key is required"):
        _parse(text)


@pytest.mark.parametrize("value", ["a b", "x'y", 'x"y', "a\\b", "a#b", "a\nb", "", None, True])
def test_sbatch_lines_refuse_what_sbatch_would_split(value):
    with pytest.raises(ValueError):
        sbatchw(value)


def test_snapshot_masks_secrets_and_names_the_submit_host():
    snap = _parse(SMALL).snapshot()
    assert snap["env"]["TOKEN"] == "***" and snap["scheduler"] == "slurm"
    assert snap["slurm"]["nodes"] == 2 and snap["hosts"][0]["name"] == "submit"


def test_build_on_compute_builds_remap_through_srun():
    from launcher.deploy import _Deploy
    from launcher.render import render_template
    inv = _parse(SMALL.replace("  nodes: 2\n", "  nodes: 2\n  partition: cpu\n  build_on: compute\n"))
    deploy = _Deploy(inv, ROOT, False, 60, None)
    assert deploy.srun_args() == ["--partition=cpu"]
    script = render_template("build.sh.j2", workdir=inv.controller.workdir, venv=None, hash=None, key=None,
                             srun=deploy.srun_args())
    assert "    srun --nodes=1 --ntasks=1 --partition=cpu make -C remap\n" in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert _Deploy(_parse(SMALL), ROOT, False, 60, None).srun_args() is None
    # with GPUs, the build goes to a compute node unless the inventory says otherwise
    gpus = _parse(SMALL.replace("  nodes: 2\n", "  nodes: 2\n  gpus_per_node: 4\n"))
    assert gpus.slurm.build_on == "compute" and _Deploy(gpus, ROOT, False, 60, None).srun_args() is not None
    login = _parse(SMALL.replace("  nodes: 2\n", "  nodes: 2\n  gpus_per_node: 4\n  build_on: submit\n"))
    assert login.slurm.build_on == "submit"


@pytest.mark.parametrize("library, ok, text", [
    (None, None, "not built (mae-launch deploy)"),
    (b"\x7fELF cpu-only build", False, "CPU kernels only, but the nodes have GPUs: deploy with slurm.build_on: compute"),
    (b"\x7fELF ... __cudaRegisterFatBinary ...", True, "CPU and CUDA kernels"),
])
def test_check_says_which_kernels_the_shared_remap_build_has(tmp_path, library, ok, text):
    """`check` on a GPU Slurm inventory reads the shared build in the submit host's workdir (a stand-in
    file here: this machine has no CUDA toolchain; a CUDA build links the CUDA runtime's
    __cudaRegisterFatBinary, a CPU-only one does not)."""
    import json

    from cluster_fixtures import run_cli

    work = tmp_path / "work"
    (work / "remap").mkdir(parents=True)
    if library is not None:
        (work / "remap" / "remap_ops.so").write_bytes(library)
    inv = tmp_path / "gpu.yml"
    inv.write_text(SMALL.replace("  nodes: 2\n", "  nodes: 2\n  gpus_per_node: 4\n")
                   + f"hosts: [{{name: submit, connection: local, workdir: {work}}}]\n")
    p = run_cli(["check", "-i", inv, "--json", "--min-free-gb", "0"], timeout=120)
    cell = json.loads(p.stdout)["hosts"]["submit"]["remap"]
    assert cell == {"ok": ok, "text": text}
