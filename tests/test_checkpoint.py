"""Atomic checkpoints: a failure or a kill during a save never damages the previous checkpoint."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from mae import checkpoint
from mae.errors import CheckpointError

# also run by make test-sdk-compat (torch 2.0.1, the Poplar SDK's)
pytestmark = pytest.mark.sdk_compat


def state(epoch, n=4):
    return {"model": {"w": torch.full((n,), float(epoch))}, "optimizer": {}, "epoch": epoch, "scaler": {},
            "args": {"epochs": 3}}


class Explodes:
    """Pickling starts, writes part of the file, then fails (like a crash mid-save)."""

    def __reduce__(self):
        raise OSError("disk vanished")


def test_failure_mid_save_keeps_previous(tmp_path):
    checkpoint.save_checkpoint(tmp_path, state(0), keep_copy=True)
    bad = state(1, n=100_000)
    bad["late"] = Explodes()
    with pytest.raises(OSError, match="disk vanished"):
        checkpoint.save_checkpoint(tmp_path, bad, keep_copy=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth", "model_0.pth"]  # no temp left
    path, ckpt = checkpoint.load_last_valid(tmp_path)
    assert path.name == "checkpoint.pth" and ckpt["epoch"] == 0 and torch.equal(ckpt["model"]["w"], torch.zeros(4))


def test_copies_and_fallback_to_older_valid(tmp_path, capsys):
    for e in range(3):
        checkpoint.save_checkpoint(tmp_path, state(e), keep_copy=e != 1)
    assert {p.name for p in tmp_path.iterdir()} == {"checkpoint.pth", "model_0.pth", "model_2.pth"}
    assert [p.name for p in checkpoint.candidates(tmp_path)] == ["checkpoint.pth", "model_2.pth", "model_0.pth"]
    # damage both newest files (model_2 is a hard link of checkpoint.pth, or a copy)
    (tmp_path / "checkpoint.pth").unlink()
    (tmp_path / "model_2.pth").write_bytes(b"garbage")
    path, ckpt = checkpoint.load_last_valid(tmp_path)
    assert path.name == "model_0.pth" and ckpt["epoch"] == 0
    assert "model_2.pth is unreadable" in capsys.readouterr().err
    assert checkpoint.resolve_resume(None, tmp_path) == (None, None)
    assert checkpoint.resolve_resume("", tmp_path / "empty") == (None, None)
    with pytest.raises(CheckpointError, match="not found"):
        checkpoint.resolve_resume(str(tmp_path / "missing.pth"), tmp_path)
    with pytest.raises(CheckpointError, match="unreadable"):
        checkpoint.load(tmp_path / "model_2.pth")


SAVER = textwrap.dedent("""
    import sys, torch
    from mae import checkpoint
    out = sys.argv[1]
    for e in range(10**6):
        checkpoint.save_checkpoint(out, {"model": {"w": torch.full((1_000_000,), float(e))}, "optimizer": {},
                                         "epoch": e, "scaler": {}, "args": {}}, keep_copy=False)
        print(e, flush=True)
""")


def test_sigkill_during_saves_leaves_a_valid_checkpoint(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "0"  # one complete save
        time.sleep(0.3)  # then kill it wherever it is (most likely inside a save)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    path, ckpt = checkpoint.load_last_valid(tmp_path)
    assert path is not None and path.name == "checkpoint.pth"
    assert torch.equal(ckpt["model"]["w"], torch.full((1_000_000,), float(ckpt["epoch"])))
    # a later save removes the dead writer's temp file
    checkpoint.save_checkpoint(tmp_path, state(99), keep_copy=False)
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]


def test_missing_pretraining_checkpoint_names_the_finetune_flag(tmp_path):
    from mae import models_vit

    with pytest.raises(CheckpointError, match="give --finetune an existing file"):
        checkpoint.load_pretrained(models_vit.vit_tiny_patch4(), tmp_path / "none.pth")
