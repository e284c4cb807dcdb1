"""Pretraining: lr schedule, weight-decay groups, the loop, resume exactness."""
import math
import re

import pytest
import torch

from mae import config, metrics, optim, precision, pretrain
from mae.models_mae import create_model

# also run by make test-sdk-compat (torch 2.0.1, the Poplar SDK's)
pytestmark = pytest.mark.sdk_compat

TINY = ["--model", "mae_vit_tiny_patch4", "--input_size", "16", "--generated_data", "--generated_size", "48",
        "--batch_size", "8", "--num_workers", "0", "--device", "cpu", "--print_freq", "2", "--warmup_epochs", "1",
        "--blr", "1e-2", "--precision", "fp32", "--norm_pix_loss", "false", "--min_lr", "0", "--seed", "0",
        "--weight_decay", "0.05", "--mask_ratio", "0.75"]  # independent of the demo config's tuning


def tiny_cfg(tmp_path, *extra):
    return config.parse([*TINY, "--output_dir", str(tmp_path), *extra], job="pretrain")


def test_lr_schedule_values():
    lr, lo = 1e-3, 1e-5
    at = lambda e: optim.lr_at(e, lr, lo, warmup_epochs=4, epochs=14)  # noqa: E731
    assert at(0) == 0.0
    assert at(1) == pytest.approx(lr / 4) and at(3.5) == pytest.approx(lr * 3.5 / 4)
    assert at(4) == pytest.approx(lr)
    assert at(9) == pytest.approx(lo + (lr - lo) / 2)  # half-way through the cosine
    assert at(4 + 10 / 3) == pytest.approx(lo + (lr - lo) * 0.5 * (1 + math.cos(math.pi / 3)))
    assert at(14) == pytest.approx(lo)
    opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr_scale": 0.5},
                           {"params": [torch.zeros(1, requires_grad=True)]}], lr=1.0)
    assert optim.adjust_learning_rate(opt, 2, lr, lo, 4, 14) == pytest.approx(lr / 2)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([lr / 4, lr / 2])


def test_weight_decay_groups():
    model = create_model("mae_vit_tiny_patch4")
    groups = optim.param_groups_weight_decay(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)] for g in groups if g["weight_decay"] == 0.05 for p in g["params"]}
    no_decay = {names[id(p)] for g in groups if g["weight_decay"] == 0.0 for p in g["params"]}
    assert "blocks.0.attn.qkv.weight" in decay and "decoder_pred.weight" in decay
    assert "patch_embed.proj.weight" in decay
    assert {"blocks.0.attn.qkv.bias", "norm.weight", "decoder_norm.bias"} <= no_decay
    assert all(not n.endswith(".bias") and model.get_parameter(n).ndim > 1 for n in decay)
    assert "pos_embed" not in decay | no_decay  # fixed, not trained
    opt = optim.build_adamw(model, config.parse([]), lr=1e-3)
    assert opt.defaults["betas"] == (0.9, 0.95)


def test_run_prints_parsable_meter_lines_and_writes_outputs(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path, "--epochs", "2", "--saveckp_freq", "1", "--gradient_accumulation_count", "2")
    seen = []
    stats = pretrain.run(cfg, hooks=[lambda ctx: seen.append((ctx.epoch, ctx.checkpoint_path.name))])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("Training Epoch: [")and "\t" in line]
    assert lines and lines[0].startswith("Training Epoch: [0][0/6]\ttime ")
    for line in lines:
        assert re.search(r"throughput:?[ \t]*(\d+)", line) and re.search(r"loss:?[ \t]*([e\d\.\-\+]+)", line)
    assert "effective batch 16" in out and "lr 6.250e-04" in out  # 1e-2 * 16 / 256
    assert seen == [(0, "checkpoint.pth"), (1, "checkpoint.pth")]
    names = {p.name for p in tmp_path.iterdir() if not p.name.startswith("events.out.tfevents.")}
    assert names == {"checkpoint.pth", "model_0.pth", "model_1.pth", "metrics.jsonl"}
    assert list(tmp_path.glob("events.out.tfevents.*"))  # TensorBoard beside metrics.jsonl
    records = metrics.read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [0, 1]
    assert math.isfinite(stats["loss"]) and stats["images"] == 48
    ckpt = torch.load(tmp_path / "checkpoint.pth", weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "epoch", "scaler", "args"} and ckpt["epoch"] == 1
    assert ckpt["args"]["gradient_accumulation_count"] == 2 and "blocks.0.attn.qkv.weight" in ckpt["model"]


class Stop(BaseException):
    """Stands for a kill right after a checkpoint."""


def image_folder(root, n=48, size=20):
    """A tiny ImageNet-layout dataset (random pictures), so augmentation randomness is exercised."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        folder = root / "train" / str(i % 2)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (torch.rand(size, size, 3, generator=gen) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.mark.parametrize("workers", [0, 1])
def test_resumed_run_equals_uninterrupted(tmp_path, capsys, workers):
    data = image_folder(tmp_path / "data")
    common = ["--epochs", "3", "--saveckp_freq", "1", "--gradient_accumulation_count", "2", "--mask_ratio", "0.5",
              "--generated_data", "false", "--data_path", str(data), "--num_workers", str(workers)]
    pretrain.run(tiny_cfg(tmp_path / "a", *common), hooks=[])

    def stop_after_first(ctx):
        if ctx.epoch == 0:
            raise Stop

    with pytest.raises(Stop):
        pretrain.run(tiny_cfg(tmp_path / "b", *common), hooks=[stop_after_first])
    assert torch.load(tmp_path / "b" / "checkpoint.pth", weights_only=True)["epoch"] == 0
    pretrain.run(tiny_cfg(tmp_path / "b", *common, "--resume"), hooks=[])
    assert "resumed from" in capsys.readouterr().out

    a = torch.load(tmp_path / "a" / "checkpoint.pth", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)
    la = [r["loss"] for r in metrics.read_jsonl(tmp_path / "a" / "metrics.jsonl") if r["type"] == "epoch"]
    lb = [r["loss"] for r in metrics.read_jsonl(tmp_path / "b" / "metrics.jsonl") if r["type"] == "epoch"]
    assert la == lb


def test_nothing_to_do_when_done(tmp_path, capsys):
    pretrain.run(tiny_cfg(tmp_path, "--epochs", "1"), hooks=[])
    assert pretrain.run(tiny_cfg(tmp_path, "--epochs", "1", "--resume"), hooks=[]) == {}
    assert "nothing to do" in capsys.readouterr().out


def test_too_little_data_is_one_clear_error(tmp_path):
    from mae.errors import DataError

    with pytest.raises(DataError, match="too few"):
        pretrain.run(tiny_cfg(tmp_path, "--generated_size", "4"), hooks=[])


def test_precision_choices():
    assert precision.resolve("fp32", "cpu").autocast is None
    assert precision.resolve("bf16", "cuda").autocast == torch.bfloat16
    assert precision.resolve("bf16", "cpu").autocast in (None, torch.bfloat16)  # None: no native bf16
    assert precision.resolve("auto", "cuda").name == "fp32"
    native = precision.cpu_has_bf16()
    assert precision.resolve("auto", "cpu").name == ("bf16" if native else "fp32")
    assert precision.resolve("auto", "ipu", half=True).half and not precision.resolve("auto", "ipu").half
    from mae.errors import ConfigError

    with pytest.raises(ConfigError, match="fp16 needs device cuda"):
        precision.resolve("fp16", "cpu")
    for value, half in (("bf16", False), ("fp32", True)):
        with pytest.raises(ConfigError):
            precision.resolve(value, "ipu", half=half)


def test_cpu_bf16_detection_reads_cpuinfo_flags(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_tile\n")
    assert "avx512_bf16" in precision._cpuinfo_flags(str(info))
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f\n")
    assert not precision._cpuinfo_flags(str(info)) & set(precision._CPU_FLAGS)
