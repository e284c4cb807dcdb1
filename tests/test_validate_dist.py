"""Distributed validation under real torchrun counts every sample exactly once (odd-sized split)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from mae import models_vit, validate

from test_finetune import ROOT, TINY, write_folder_dataset


@pytest.mark.slow
def test_two_process_validation_counts_exactly(tmp_path, capsys):
    data = write_folder_dataset(tmp_path / "data", {"train": 1, "validation": 3})  # 9 images: odd
    torch.manual_seed(1)
    ckpt = tmp_path / "classifier.pth"
    torch.save({"model": models_vit.vit_tiny_patch4(num_classes=3).state_dict(), "epoch": 4}, ckpt)
    args = ["--config", "digits_finetune", *TINY, "--batch_size", "2", "--data_path", str(data),
            "--resume", str(ckpt)]

    single = validate.main(args + ["--output_dir", str(tmp_path / "one")])
    assert single == 0
    capsys.readouterr()
    one = json.loads((tmp_path / "one" / "validation.json").read_text())

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "mae.validate", *args, "--output_dir", str(tmp_path / "two")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    two = json.loads((tmp_path / "two" / "validation.json").read_text())
    assert one["n"] == two["n"] == 9
    assert two["top1"] == pytest.approx(one["top1"]) and two["top5"] == pytest.approx(one["top5"])
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)
    assert proc.stdout.count("Accuracy of the network on the 9 test images") == 1  # rank 0 only
    assert "2 process(es)" in proc.stdout
