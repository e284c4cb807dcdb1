"""`mae-launch render`: output, defaults, and one-line errors with exit status 2 (real subprocesses)."""
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from launcher.cli import main

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args):
    return CliRunner().invoke(main, list(args), env={"MAE_LAUNCH_INVENTORY": None}, catch_exceptions=False)


def test_render_prints_the_poprun_command_of_pod64():
    res = invoke("render", "pretrain", "--inventory", "pod64", "--run-id", "r1", "--commands")
    assert res.exit_code == 0, res.output
    assert "==> pod64-host0 (controller, node 0, ssh): /localdata/mae/mae-launch/runs/r1/pretrain.pod64-host0.sh" in res.output
    assert "--num-instances=4" in res.output and "--vipu-partition=pod64" in res.output
    assert "set -euo pipefail" not in res.output  # --commands: no scripts


def test_render_defaults_to_the_local_inventory_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("render", "finetune", "--run-id", "r1")
    assert res.exit_code == 0, res.output
    assert "torchrun \\" in res.output and f"--finetune {ROOT}/output/r1/pretrain/checkpoint.pth" in res.output
    assert "set -euo pipefail" in res.output


def test_render_never_prints_secrets():
    res = invoke("render", "pretrain", "-i", "inventories/gpu-cluster.yml", "--host", "gpu02")
    assert res.exit_code == 0 and "replace-me" not in res.output
    assert "==> gpu02" in res.output and "==> gpu01" not in res.output


def test_help_and_version():
    res = invoke("--help")
    assert res.exit_code == 0 and "render" in res.output and "inventory" in res.output
    res = invoke("render", "--help")
    assert res.exit_code == 0 and "--inventory" in res.output and "--run-id" in res.output
    assert "mae-launch" in invoke("--version").output


def mae_launch(*args):
    env = {k: v for k, v in os.environ.items() if k != "MAE_LAUNCH_INVENTORY"}
    return subprocess.run([sys.executable, "-m", "launcher", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def one_line_error(res, *words):
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr and all(w in lines[0] for w in words), lines[0]


def test_bad_inventory_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nlauncher: torchrun\nhosts: [a]\njobs:\n  pretrain: {config: digits_pretrain, nproc_per_nod: 2}\n")
    one_line_error(mae_launch("render", "pretrain", "-i", str(bad)), f"{bad}:5: jobs.pretrain.nproc_per_nod: unknown key")


def test_unknown_job_exits_2_with_one_line():
    one_line_error(mae_launch("render", "train"), "no job named 'train'")


def test_missing_inventory_and_bad_run_id_are_user_errors():
    res = invoke("render", "pretrain", "-i", "nowhere.yml")
    assert res.exit_code == 2 and "error: inventory 'nowhere.yml' not found" in res.output
    res = invoke("render", "pretrain", "--run-id", "../x")
    assert res.exit_code == 2 and "error: run id '../x' is not usable" in res.output
