"""A real 2-process gloo run under torchrun on this machine."""
import os
import pathlib
import signal
import subprocess
import sys
import types

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]


def torchrun() -> list[str]:
    exe = pathlib.Path(sys.executable).with_name("torchrun")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.slow
def test_two_process_gloo_run_under_torchrun_and_resume(tmp_path):
    out = tmp_path / "out"
    cmd = [*torchrun(), "--standalone", "--nproc_per_node", "2", "-m", "mae.pretrain",
           "--model", "mae_vit_tiny_patch4", "--input_size", "16", "--generated_data", "--generated_size", "64",
           "--batch_size", "8", "--gradient_accumulation_count", "2", "--num_workers", "0", "--device", "cpu",
           "--warmup_epochs", "1", "--print_freq", "1", "--output_dir", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

    def run(*extra):
        proc = subprocess.Popen([*cmd, *extra], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.terminate()  # torchrun forwards SIGTERM to its workers (each in its own session)
            try:
                out, err = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
            pytest.fail("torchrun run timed out after 240 s:\n" + out[-2000:] + err[-3000:])
        assert proc.returncode == 0, out[-2000:] + err[-3000:]
        return types.SimpleNamespace(stdout=out, stderr=err)

    first = run("--epochs", "1")
    assert "cpu x 2 process(es)" in first.stdout and "effective batch 32" in first.stdout  # 8 x 2 x 2 ranks
    lines = [line for line in first.stdout.splitlines() if line.startswith("Training Epoch: [") and "\t" in line]
    assert len(lines) == 4  # 64 images / 2 ranks / batch 8 = 4 steps per epoch; rank 0 prints alone
    assert "throughput" in lines[-1]
    assert torch.load(out / "checkpoint.pth", weights_only=True)["epoch"] == 0

    second = run("--epochs", "2", "--resume")  # both ranks resume from the shared output folder
    assert "resumed from" in second.stdout and "Training Epoch: [1][0/4]" in second.stdout
    ckpt = torch.load(out / "checkpoint.pth", weights_only=True)
    assert ckpt["epoch"] == 1 and (out / "model_0.pth").exists() and (out / "model_1.pth").exists()
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
