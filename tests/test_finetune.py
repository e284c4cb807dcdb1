"""Finetuning: loading pretraining checkpoints (ours and the reference's), the recipe loop, resume,
validation with exact counts, and one-line errors for bad checkpoints."""
import json
import os
import pathlib
import subprocess
import sys

import pytest
import torch
from PIL import Image

from mae import engine_finetune, finetune, models_mae, models_vit, validate
from mae.errors import CheckpointError

# also run by make test-sdk-compat (torch 2.0.1, the Poplar SDK's)
pytestmark = pytest.mark.sdk_compat

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["--model", "vit_tiny_patch4", "--input_size", "16", "--nb_classes", "3", "--batch_size", "4",
        "--num_workers", "0", "--device", "cpu", "--print_freq", "1", "--warmup_epochs", "1"]


def write_folder_dataset(root: pathlib.Path, counts: dict[str, int], size: int = 16) -> pathlib.Path:
    """``root/<split>/<class>/*.png``: each class a distinct brightness pattern (learnable)."""
    gen = torch.Generator().manual_seed(0)
    for split, per_class in counts.items():
        for c in range(3):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                base = torch.zeros(size, size, 3)
                base[:, c * size // 3:(c + 1) * size // 3] = 200
                pixels = (base + 40 * torch.rand(size, size, 3, generator=gen)).clamp(0, 255).byte().numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_folder_dataset(tmp_path_factory.mktemp("data"), {"train": 8, "validation": 3})


def save(obj, path):
    torch.save(obj, path)
    return path


@pytest.fixture(scope="module")
def mae_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = models_mae.create_model("mae_vit_tiny_patch4")
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pth"
    opt = torch.optim.AdamW(model.parameters())
    return save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3, "scaler": None,
                 "args": {"model": "mae_vit_tiny_patch4", "input_size": 16}}, path), model


def test_load_our_pretraining_checkpoint(mae_ckpt):
    path, mae = mae_ckpt
    vit = models_vit.vit_tiny_patch4(num_classes=3)
    message = finetune.load_pretrained(vit, path, "vit_tiny_patch4")
    assert "epoch 3" in message and "head.weight" in message
    enc = mae.state_dict()
    for k, v in vit.state_dict().items():
        if k.startswith(("head.", "fc_norm.")):
            continue
        torch.testing.assert_close(v, enc[k], msg=k)
    assert 5e-6 < vit.head.weight.std() < 5e-5 and vit.head.weight.abs().max() < 2e-4  # trunc_normal(2e-5)
    assert torch.count_nonzero(vit.head.bias) == 0


def test_load_reference_encoder_only_format(tmp_path, mae_ckpt):
    _, mae = mae_ckpt
    encoder = {k: v for k, v in mae.state_dict().items() if not k.startswith(("decoder", "mask_token"))}
    path = save({"model": encoder}, tmp_path / "mae_pretrain_vit_tiny.pth")
    vit = models_vit.vit_tiny_patch4(num_classes=3)
    finetune.load_pretrained(vit, path)
    torch.testing.assert_close(vit.blocks[1].mlp.fc2.weight, mae.blocks[1].mlp.fc2.weight)


def test_pos_embed_interpolated_to_larger_images(mae_ckpt):
    path, mae = mae_ckpt
    vit = models_vit.vit_tiny_patch4(num_classes=3, img_size=32)  # 8x8 grid instead of 4x4
    message = finetune.load_pretrained(vit, path)
    assert "interpolated" in message
    assert vit.pos_embed.shape == (1, 65, 32)
    torch.testing.assert_close(vit.pos_embed[:, :1], mae.pos_embed[:, :1])  # cls row kept


def test_wrong_architecture_names_keys(tmp_path):
    path = save({"model": models_mae.mae_vit_digits().state_dict(), "epoch": 0}, tmp_path / "digits.pth")
    with pytest.raises(CheckpointError) as err:
        finetune.load_pretrained(models_vit.vit_tiny_patch4(), path, "vit_tiny_patch4")
    text = str(err.value)
    assert "does not fit model vit_tiny_patch4" in text
    assert "patch_embed.proj.weight 96x3x4x4 in the checkpoint vs 32x3x4x4" in text
    assert "unexpected: blocks.2." in text and "\n" not in text


def test_classifier_checkpoint_rejected_as_pretraining_weights(tmp_path):
    vit = models_vit.vit_tiny_patch4(num_classes=3)
    path = save({"model": vit.state_dict(), "epoch": 1}, tmp_path / "classifier.pth")
    with pytest.raises(CheckpointError, match=r"classifier checkpoint .*fc_norm.bias.*head.weight.*--resume"):
        finetune.load_pretrained(models_vit.vit_tiny_patch4(num_classes=3), path)


def test_shards_partition_every_index():
    for n in (0, 1, 7, 10):
        for world in (1, 2, 3, 4):
            got = sorted(i for r in range(world) for i in engine_finetune.shard_indices(n, r, world))
            assert got == list(range(n))


def test_finetune_resume_validate(tmp_path, tiny_data, mae_ckpt, capsys):
    ckpt, _ = mae_ckpt
    out = tmp_path / "ft"
    args = ["--config", "digits_finetune", *TINY, "--data_path", str(tiny_data), "--output_dir", str(out),
            "--finetune", str(ckpt), "--mixup", "0.8", "--cutmix", "1.0", "--precision", "bf16",
            "--saveckp_freq", "1"]
    assert finetune.main(args + ["--epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert "loaded pretraining weights" in text and "* Acc@1" in text
    assert "Epoch: [0] [0/6]  lr: " in text and "loss: " in text  # finetune meter variant
    first = torch.load(out / "checkpoint.pth", weights_only=True)
    assert first["epoch"] == 0 and set(first) >= {"model", "optimizer", "epoch", "scaler", "args"}
    assert (out / "model_0.pth").is_file()
    assert finetune.main(args + ["--epochs", "2", "--resume"]) == 0
    text = capsys.readouterr().out
    assert "resumed from" in text and "(epoch 0 done)" in text and "Epoch: [1]" in text and "Epoch: [0]" not in text
    state = torch.load(out / "checkpoint.pth", weights_only=True)
    assert state["epoch"] == 1
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_n"] for r in records if "val_n" in r] == [9, 9]

    val_out = tmp_path / "val"
    assert validate.main(["--config", "digits_finetune", *TINY, "--data_path", str(tiny_data),
                          "--resume", str(out / "checkpoint.pth"), "--output_dir", str(val_out)]) == 0
    text = capsys.readouterr().out
    result = json.loads((val_out / "validation.json").read_text())
    assert result["n"] == 9 and 0 <= result["top1"] <= 100 and result["top5"] == 100.0  # 3 classes
    assert f"* Acc@1 {result['top1']:.3f} Acc@5 100.000 loss {result['loss']:.3f}" in text
    assert f"Accuracy of the network on the 9 test images: {result['top1']:.1f}%" in text
    from tests.test_tracking import read_scalars  # TensorBoard beside metrics.jsonl, top-1/top-5 included

    tb = read_scalars(out)
    assert [s for s, _ in tb["val/top1"]] == [0, 1] and [s for s, _ in tb["epoch/epoch_time"]] == [0, 1]
    assert {"train/loss", "train/lr", "train/throughput", "val/top5", "epoch/loss"} <= set(tb)
    assert read_scalars(val_out)["val/top1"] == [(0, pytest.approx(result["top1"]))]


def test_finetune_from_random_init(tmp_path, tiny_data, capsys):
    out = tmp_path / "scratch"
    assert finetune.main(["--config", "digits_finetune", *TINY, "--data_path", str(tiny_data), "--output_dir",
                          str(out), "--finetune", "none", "--epochs", "1"]) == 0
    assert "random initialisation" in capsys.readouterr().out
    assert (out / "checkpoint.pth").is_file()


def run_module(*args, env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=120)


def test_bad_checkpoints_exit_2_one_line(tmp_path, tiny_data):
    wrong = save({"model": models_mae.mae_vit_digits().state_dict(), "epoch": 0}, tmp_path / "wrong.pth")
    classifier = save({"model": models_vit.vit_tiny_patch4(num_classes=3).state_dict()}, tmp_path / "cls.pth")
    base = ["--config", "digits_finetune", *TINY, "--data_path", str(tiny_data), "--output_dir", str(tmp_path)]
    for path, needle in ((wrong, "does not fit model vit_tiny_patch4"), (classifier, "classifier checkpoint")):
        proc = run_module("mae.finetune", *base, "--finetune", str(path))
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert needle in lines[0] and str(path) in lines[0]
    # validating a pretraining checkpoint is the mirror mistake
    proc = run_module("mae.validate", *base, "--resume", str(wrong))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no classifier head" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
