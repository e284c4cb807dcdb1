"""The finetuning classifier, layer-wise lr decay and the finetune/eval transforms."""
import pathlib

import pytest
import torch
from PIL import Image

from mae import augment, lr_decay, models_vit

# also run by make test-sdk-compat (torch 2.0.1, the Poplar SDK's)
pytestmark = pytest.mark.sdk_compat

REFERENCE = pathlib.Path(__file__).resolve().parent / "data"  # copies of the reference key lists


def reference_keys(name: str) -> dict[str, str]:
    path = REFERENCE / name
    rows = [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()
            if line and not line.startswith("#")]
    return {k: v for k, v in rows}


def shapes(model) -> dict[str, str]:
    return {k: "x".join(map(str, v.shape)) for k, v in model.state_dict().items()}


def test_vit_base_names_and_shapes_match_reference():
    assert shapes(models_vit.vit_base_patch16()) == reference_keys("vit_base_patch16_finetune.keys.tsv")


def test_classifier_pools_patch_tokens_and_has_no_final_norm():
    torch.manual_seed(0)
    model = models_vit.vit_digits(drop_path_rate=0.0).eval()
    assert not any(k.startswith("norm.") for k in model.state_dict())
    x = torch.randn(3, 3, 32, 32)
    out = model(x)
    assert out.shape == (3, 10)
    # the reference forward: blocks, mean over patch tokens (cls excluded), fc_norm, head
    tokens = model.patch_embed(x)
    tokens = torch.cat([model.cls_token.expand(3, -1, -1), tokens], 1) + model.pos_embed
    for blk in model.blocks:
        tokens = blk(tokens)
    expected = model.head(model.fc_norm(tokens[:, 1:].mean(1)))
    torch.testing.assert_close(out, expected)


def test_digits_encoder_matches_mae_vit_digits():
    from mae import models_mae
    mae = models_mae.mae_vit_digits()
    vit = models_vit.vit_digits()
    enc = {k: v.shape for k, v in mae.state_dict().items()
           if not k.startswith(("decoder", "mask_token", "norm."))}
    cls = {k: v.shape for k, v in vit.state_dict().items() if not k.startswith(("head.", "fc_norm."))}
    assert enc == cls


def test_drop_path_rates_increase_with_depth():
    model = models_vit.vit_digits(drop_path_rate=0.3)
    rates = [getattr(blk.drop_path1, "drop_prob", 0.0) for blk in model.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.3) and rates == sorted(rates)
    assert all(r > 0 for r in rates[1:])


def test_create_model_unknown_name_lists_known():
    with pytest.raises(KeyError, match="vit_digits"):
        models_vit.create_model("vit_tiny_nonexistent")


def test_layer_decay_scales_follow_recipe():
    model = models_vit.vit_digits()
    depth = len(model.blocks)
    decay = 0.65
    groups = lr_decay.param_groups_lrd(model, 0.05, model.no_weight_decay(), decay)
    scale_of, wd_of = {}, {}
    for g in groups:
        for name in g["param_names"]:
            scale_of[name], wd_of[name] = g["lr_scale"], g["weight_decay"]
    assert set(scale_of) == {n for n, _ in model.named_parameters()}
    top = depth + 1
    assert scale_of["cls_token"] == scale_of["pos_embed"] == pytest.approx(decay ** top)
    assert scale_of["patch_embed.proj.weight"] == pytest.approx(decay ** top)
    assert scale_of["blocks.0.attn.qkv.weight"] == pytest.approx(decay ** depth)
    assert scale_of[f"blocks.{depth - 1}.mlp.fc2.weight"] == pytest.approx(decay)
    assert scale_of["head.weight"] == scale_of["fc_norm.weight"] == 1.0
    assert wd_of["head.weight"] == 0.05 and wd_of["head.bias"] == 0.0
    assert wd_of["pos_embed"] == wd_of["cls_token"] == wd_of["fc_norm.weight"] == 0.0
    opt = torch.optim.AdamW(groups, lr=1e-3)  # the groups are valid optimizer groups
    assert len(opt.param_groups) == len(groups)


@pytest.mark.parametrize("size,resize", [(224, 256), (32, 36), (64, 73), (384, 384)])
def test_eval_transform_scales_with_input_size(size, resize):
    assert augment.eval_resize_size(size) == resize
    img = Image.new("RGB", (50, 40), (128, 64, 32))
    out = augment.eval_transform(size)(img)
    assert out.shape == (3, size, size)


def test_train_transform_uses_randaugment_and_random_erasing():
    tf = augment.train_transform(32)
    text = repr(tf)
    assert "RandAugment" in text and "RandomErasing" in text and "bicubic" in text.lower()
    out = tf(Image.new("RGB", (32, 32), (200, 10, 10)))
    assert out.shape == (3, 32, 32)


def test_randaugment_posterize_zero_bits_gives_black_image():
    img = Image.new("RGB", (8, 8), (200, 100, 50))
    out = augment._posterize(img, 0)
    assert out.size == img.size and out.getextrema() == ((0, 0), (0, 0), (0, 0))
    assert augment._posterize(img, 8) is img
    assert augment._posterize(img, 2).getpixel((0, 0)) == (192, 64, 0)


def test_vit_base_finetune_config_wires_the_recipe():
    from timm.loss import SoftTargetCrossEntropy

    from mae import config, finetune

    cfg = config.parse(["--config", "vit_base_finetune"], job="finetune")
    mixup, criterion = finetune.mixup_and_criterion(cfg)
    assert (mixup.mixup_alpha, mixup.cutmix_alpha, mixup.label_smoothing) == (0.8, 1.0, 0.1)
    assert isinstance(criterion, SoftTargetCrossEntropy)
    assert (cfg.layer_decay, cfg.drop_path, cfg.reprob, cfg.aa) == (0.65, 0.1, 0.25, "rand-m9-mstd0.5-inc1")
    assert (cfg.blr, cfg.min_lr, cfg.warmup_epochs, cfg.epochs) == (5.0e-4, 1.0e-6, 5, 100)
    tf = repr(augment.build_transform(True, cfg))
    assert "size=(224, 224), scale=(0.08, 1.0)" in tf and "RandAugment" in tf and "RandomErasing(p=0.25, mode=pixel" in tf
