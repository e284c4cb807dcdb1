"""`mae-launch pipeline` with a local inventory (no SSH): pretrain -> finetune -> validate through torchrun,
each stage consuming the previous checkpoint, the final top-1 printed. Tiny: 1 epoch each."""
import json
import secrets
import socket
import subprocess

import pytest
import yaml

from cluster_fixtures import ROOT, run_cli

pytestmark = pytest.mark.slow

TINY = ["--epochs", "1", "--warmup_epochs", "0", "--print_freq", "10"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_local_pipeline_end_to_end(tmp_path):
    work = tmp_path / "work"
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "mae.data", "digits", "--out",
                    str(work / "data" / "digits")], check=True, capture_output=True, cwd=ROOT)
    inv = tmp_path / "local.yml"
    inv.write_text(yaml.safe_dump({
        "name": "localtest", "launcher": "torchrun",
        "hosts": [{"name": "localhost", "connection": "local"}],
        "paths": {"workdir": str(work), "venv": str(ROOT / ".venv"), "data": "data/digits", "output": "output"},
        "env": {"OMP_NUM_THREADS": 1},
        "network": {"master_port": _free_port()},
        "jobs": {"pretrain": {"config": "digits_pretrain", "nproc_per_node": 1, "args": TINY},
                 "finetune": {"config": "digits_finetune", "nproc_per_node": 1, "args": TINY},
                 "validate": {"config": "digits_finetune", "nproc_per_node": 1}},
    }))
    runs = tmp_path / "runs"
    rid = f"pipe-{secrets.token_hex(3)}"  # unique: stop/fail-fast find processes by run id
    p = run_cli(["pipeline", "-i", inv, "--run-id", rid], env_extra={"MAE_LAUNCH_RUNS_DIR": str(runs)},
                timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    out = work / "output" / rid
    for job in ("pretrain", "finetune"):
        assert (out / job / "checkpoint.pth").is_file()
    result = json.loads((out / "validate" / "validation.json").read_text())
    assert f"final validation top-1: {float(result['top1']):.2f}%" in p.stdout
    # finetune started from pretrain's checkpoint, validate from finetune's
    assert str(out / "pretrain" / "checkpoint.pth") in (work / "runs" / rid / "finetune.localhost.sh").read_text()
    assert str(out / "finetune" / "checkpoint.pth") in (work / "runs" / rid / "validate.localhost.sh").read_text()
    from test_tracking import read_scalars  # what `make demo` leaves: TensorBoard beside metrics.jsonl

    assert {"train/loss", "epoch/loss", "epoch/epoch_time"} <= set(read_scalars(out / "pretrain"))
    assert {"val/top1", "val/top5", "train/lr"} <= set(read_scalars(out / "finetune"))
    assert read_scalars(out / "validate")["val/top1"][0][1] == pytest.approx(float(result["top1"]))
    tb = run_cli(["tensorboard", rid, "--print"], env_extra={"MAE_LAUNCH_RUNS_DIR": str(runs)}, timeout=120)
    assert tb.returncode == 0 and f"--logdir {runs / rid}" in tb.stdout, tb.stdout + tb.stderr
    assert len(list((runs / rid).rglob("events.out.tfevents.*"))) >= 3
    record = json.loads((runs / rid / "run.json").read_text())
    assert [j["job"] for j in record["jobs"]] == ["pretrain", "finetune", "validate"]
    assert all(j["state"] == "succeeded" for j in record["jobs"])
