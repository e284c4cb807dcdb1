"""Tracking: TensorBoard event files (and W&B offline) beside metrics.jsonl on rank 0."""
import importlib.util
import pathlib

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mae import metrics, pretrain
from tests.test_pretrain import tiny_cfg


def read_scalars(folder: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of every event file in `folder`: {tag: [(step, value), ...]}."""
    out: dict[str, list] = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return out


def test_scalars_of_each_record_kind():
    step, values = metrics.scalars({"type": "step", "epoch": 2, "step": 3, "steps": 10, "loss": 0.5,
                                    "lr": 1e-3, "throughput": 100.0, "time": 0.1, "data": 0.01})
    assert step == 23 and values == {"train/loss": 0.5, "train/lr": 1e-3, "train/throughput": 100.0,
                                     "train/time": 0.1, "train/data": 0.01}
    step, values = metrics.scalars({"type": "epoch", "epoch": 4, "loss": 0.4, "lr": 1e-4, "throughput": 50.0,
                                    "epoch_time": 12.5, "images": 640})
    assert step == 4 and values == {"epoch/loss": 0.4, "epoch/lr": 1e-4, "epoch/throughput": 50.0,
                                    "epoch/epoch_time": 12.5}
    step, values = metrics.scalars({"job": "finetune", "epoch": 1, "train_loss": 1.2, "val_top1": 75.0,
                                    "val_top5": 99.0, "val_loss": 0.8, "val_n": 9, "epoch_time": 3.0,
                                    "lr": None, "throughput": float("nan")})
    assert step == 1 and values == {"epoch/loss": 1.2, "val/top1": 75.0, "val/top5": 99.0, "val/loss": 0.8,
                                    "epoch/epoch_time": 3.0}
    step, values = metrics.scalars({"type": "validate", "top1": 90.0, "top5": 100.0, "loss": 0.3, "n": 9,
                                    "checkpoint": "x.pth"})
    assert step == 0 and values == {"val/top1": 90.0, "val/top5": 100.0, "val/loss": 0.3}


def test_pretraining_writes_event_files_read_back(tmp_path):
    cfg = tiny_cfg(tmp_path, "--epochs", "2", "--saveckp_freq", "2")
    pretrain.run(cfg, hooks=[])
    records = metrics.read_jsonl(tmp_path / "metrics.jsonl")
    got = read_scalars(tmp_path)
    assert {"train/loss", "train/lr", "train/throughput", "epoch/loss", "epoch/lr", "epoch/throughput",
            "epoch/epoch_time"} <= set(got)
    epochs = [r for r in records if r["type"] == "epoch"]
    assert [s for s, _ in got["epoch/loss"]] == [0, 1]
    assert [v for _, v in got["epoch/loss"]] == pytest.approx([r["loss"] for r in epochs], rel=1e-6)
    steps = [r for r in records if r["type"] == "step"]
    assert [s for s, _ in got["train/loss"]] == [r["epoch"] * r["steps"] + r["step"] for r in steps]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is an optional package")
def test_wandb_offline_run_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = tiny_cfg(tmp_path, "--epochs", "1", "--wandb", "--wandb_project", "mae-test")
    pretrain.run(cfg, hooks=[])
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    assert read_scalars(tmp_path)["epoch/loss"]  # TensorBoard is written as well


def test_wandb_without_key_warns_and_trains(tmp_path, monkeypatch, capsys):
    pytest.importorskip("wandb", reason="wandb is an optional package")
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = tiny_cfg(tmp_path / "out", "--epochs", "1", "--wandb")
    pretrain.run(cfg, hooks=[])
    assert "--wandb: no W&B key" in capsys.readouterr().err
    assert read_scalars(tmp_path / "out")["epoch/loss"]
