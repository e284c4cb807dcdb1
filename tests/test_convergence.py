"""Convergence on real data: the demo pipeline (pretrain -> finetune -> validate) on scikit-learn's
digits, through the real command lines, with shorter schedules than the demo (``make demo``)."""
import json
import os
import subprocess
import sys
import time

import pytest

from test_finetune import ROOT

# shorter than the digits_pretrain / digits_finetune configs of the demo (50 / 30 epochs of batch 64);
# batch 32 (same lr) gives more steps per epoch, which the short schedules need; same recipe otherwise
PRETRAIN_EPOCHS = 20
FINETUNE_EPOCHS = 12
PRETRAIN_FLAGS = ["--batch_size", "32", "--blr", "4.0e-3"]
FINETUNE_FLAGS = ["--batch_size", "32", "--blr", "8.0e-3"]
MIN_TOP1 = 93.0


def run(*args, timeout=600):
    # one compute thread beside the one data-loader worker of the digits configs (as the demo runs):
    # on 2 cores, two compute threads plus the worker oversubscribe the machine and double the CPU time
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("MAE_TEST_THREADS", "1")}
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, time.time() - start


@pytest.mark.slow
@pytest.mark.convergence
def test_digits_pretrain_finetune_validate_reaches_93_percent(tmp_path):
    data, pre, ft = tmp_path / "digits", tmp_path / "pretrain", tmp_path / "finetune"
    run("mae.data", "digits", "--out", str(data))
    common = ["--data_path", str(data), "--device", "cpu", "--print_freq", "1000"]
    _, t_pre = run("mae.pretrain", "--config", "digits_pretrain", *common, "--output_dir", str(pre),
                   "--epochs", str(PRETRAIN_EPOCHS), "--saveckp_freq", str(PRETRAIN_EPOCHS), *PRETRAIN_FLAGS)
    assert (pre / "checkpoint.pth").is_file() and (pre / f"reconstruction_{PRETRAIN_EPOCHS - 1}.png").is_file()
    out, t_ft = run("mae.finetune", "--config", "digits_finetune", *common, "--output_dir", str(ft),
                    "--finetune", str(pre / "checkpoint.pth"), "--epochs", str(FINETUNE_EPOCHS),
                    "--saveckp_freq", str(FINETUNE_EPOCHS), *FINETUNE_FLAGS)
    assert "loaded pretraining weights" in out
    out, t_val = run("mae.validate", "--config", "digits_finetune", *common, "--resume",
                     str(ft / "checkpoint.pth"), "--output_dir", str(ft))
    result = json.loads((ft / "validation.json").read_text())
    print(f"digits: top-1 {result['top1']:.2f}% on {result['n']} images; pretrain {t_pre:.0f}s, "
          f"finetune {t_ft:.0f}s, validate {t_val:.0f}s")
    assert result["n"] == 360
    assert f"Accuracy of the network on the 360 test images: {result['top1']:.1f}%" in out
    assert result["top1"] >= MIN_TOP1
