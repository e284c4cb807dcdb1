"""Finetuning under real torchrun (DDP, 2 processes), then distributed validation of its checkpoint:
every sample counted exactly once on an odd-sized split."""
import json
import os
import subprocess
import sys

import pytest
import torch

from mae import validate

from test_finetune import ROOT, TINY, write_folder_dataset


@pytest.mark.slow
def test_two_process_validation_counts_exactly(tmp_path, capsys):
    data = write_folder_dataset(tmp_path / "data", {"train": 4, "validation": 3})  # 9 validation images: odd
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

    ft = tmp_path / "ft"
    proc = subprocess.run(
        [*torchrun, "-m", "mae.finetune", "--config", "digits_finetune", *TINY, "--batch_size", "2",
         "--data_path", str(data), "--output_dir", str(ft), "--finetune", "none", "--epochs", "1",
         "--mixup", "0.8", "--cutmix", "1.0"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 process(es)" in proc.stdout and "effective batch 4" in proc.stdout
    assert "Epoch: [0] [2/3]" in proc.stdout  # 12 images / (2 per process x 2 processes)
    assert proc.stdout.count("Accuracy of the network on the 9 test images") == 1
    ckpt = ft / "checkpoint.pth"
    assert torch.load(ckpt, weights_only=True)["epoch"] == 0

    args = ["--config", "digits_finetune", *TINY, "--batch_size", "2", "--data_path", str(data),
            "--resume", str(ckpt)]
    single = validate.main(args + ["--output_dir", str(tmp_path / "one")])
    assert single == 0
    capsys.readouterr()
    one = json.loads((tmp_path / "one" / "validation.json").read_text())

    proc = subprocess.run([*torchrun, "-m", "mae.validate", *args, "--output_dir", str(tmp_path / "two")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    two = json.loads((tmp_path / "two" / "validation.json").read_text())
    assert one["n"] == two["n"] == 9
    assert two["top1"] == pytest.approx(one["top1"]) and two["top5"] == pytest.approx(one["top5"])
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert proc.stdout.count("Accuracy of the network on the 9 test images") == 1  # rank 0 only
    assert "2 process(es)" in proc.stdout
