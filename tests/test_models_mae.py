"""The MAE pretraining model against the reference: masking, loss, names/shapes, init, pos embed."""
from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mae import models_mae
from mae.models_mae import MaskedAutoencoderViT, create_model
from mae.pos_embed import get_2d_sincos_pos_embed, interpolate_pos_embed

# also run by make test-sdk-compat (torch 2.0.1, the Poplar SDK's)
pytestmark = pytest.mark.sdk_compat

KEYS_TSV = Path(__file__).resolve().parent / "data" / "mae_vit_base_patch16.keys.tsv"  # copy of the reference list


def reference_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in KEYS_TSV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape = line.split("\t")
            rows.append((key, tuple(int(s) for s in shape.split("x"))))
    return rows


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return models_mae.mae_vit_tiny_patch4().eval()


# --------------------------------------------------------------------------- masking
@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.6, 0.75, 0.9])
def test_masking_keeps_int_l_times_one_minus_r(tiny, ratio):
    n, length, d = 3, tiny.num_patches, 5
    x = torch.randn(n, length, d)
    noise = torch.rand(n, length)
    kept, mask, ids_restore = tiny.random_masking(x, ratio, noise)
    k = int(length * (1 - ratio))
    assert kept.shape == (n, k, d)
    assert mask.shape == (n, length)
    assert torch.equal(mask.sum(1), torch.full((n,), float(length - k)))
    # the kept tokens are the k smallest-noise patches, in increasing-noise order
    order = torch.argsort(noise, dim=1)[:, :k]
    assert torch.equal(kept, torch.stack([x[i, order[i]] for i in range(n)]))
    # mask is 0 exactly at the kept patches, in the original patch order
    expect = torch.ones(n, length)
    for i in range(n):
        expect[i, order[i]] = 0
    assert torch.equal(mask, expect)
    # ids_restore inverts the shuffle
    shuffle = torch.argsort(noise, dim=1)
    assert torch.equal(torch.gather(shuffle, 1, ids_restore), torch.arange(length).expand(n, -1))


def test_decoder_restore_puts_tokens_back_in_order(tiny):
    import remap

    n, length, d = 2, tiny.num_patches, 4
    x = torch.arange(n * length * d, dtype=torch.float32).reshape(n, length, d)
    noise = torch.rand(n, length)
    kept, mask, ids_restore = tiny.random_masking(x, 0.75, noise)
    cls = torch.full((n, 1, d), -1.0)
    mask_token = torch.full((d,), -7.0)
    out = remap.restore(torch.cat([cls, kept], 1), ids_restore, mask_token)
    assert out.shape == (n, 1 + length, d)
    assert torch.equal(out[:, 0], cls[:, 0])
    visible = mask == 0
    assert torch.equal(out[:, 1:][visible], x[visible])  # visible patches back at their own place
    assert torch.equal(out[:, 1:][~visible], mask_token.expand(int((~visible).sum()), d))


def test_noise_fixes_masking_and_output(tiny):
    imgs = torch.randn(2, 3, 16, 16)
    noise = torch.rand(2, tiny.num_patches)
    with torch.no_grad():
        a = tiny(imgs, 0.75, noise=noise)
        b = tiny(imgs, 0.75, noise=noise.clone())
        c = tiny(imgs, 0.75, noise=1 - noise)
    assert torch.equal(a[2], b[2]) and torch.equal(a[1], b[1]) and torch.equal(a[0], b[0])
    assert not torch.equal(a[2], c[2])
    # the removed patches are the ones with the largest noise
    removed = torch.argsort(noise, dim=1, descending=True)[:, : tiny.num_patches - 4]
    assert torch.equal(torch.gather(a[2], 1, removed), torch.ones_like(removed, dtype=a[2].dtype))
    with pytest.raises(ValueError, match="noise must have shape"):
        tiny(imgs, 0.75, noise=torch.rand(2, 3))


# --------------------------------------------------------------------------- loss
def hand_loss(imgs, pred, mask, p, norm_pix):
    n, c, h, w = imgs.shape
    total, count = 0.0, 0.0
    for i in range(n):
        for r in range(h // p):
            for s in range(w // p):
                idx = r * (w // p) + s
                if mask[i, idx] == 0:
                    continue
                patch = imgs[i, :, r * p:(r + 1) * p, s * p:(s + 1) * p].permute(1, 2, 0).reshape(-1).double()
                if norm_pix:
                    patch = (patch - patch.mean()) / math.sqrt(patch.var(unbiased=True).item() + 1e-6)
                total += ((pred[i, idx].double() - patch) ** 2).mean().item()
                count += 1
    return total / count


@pytest.mark.parametrize("norm_pix", [False, True])
def test_loss_equals_hand_computation(norm_pix):
    torch.manual_seed(1)
    model = models_mae.mae_vit_tiny_patch4(norm_pix_loss=norm_pix).eval()
    imgs = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        loss, pred, mask = model(imgs, mask_ratio=0.75, noise=torch.rand(2, model.num_patches))
    assert pred.shape == (2, 16, 4 * 4 * 3)
    assert loss.item() == pytest.approx(hand_loss(imgs, pred, mask, 4, norm_pix), rel=1e-5)


def test_forward_matches_reference_math(tiny):
    """The reference's gather/repeat/cat code, run with the same weights, gives the same numbers."""
    m = tiny
    imgs = torch.randn(3, 3, 16, 16)
    noise = torch.rand(3, m.num_patches)
    with torch.no_grad():
        loss, pred, mask = m(imgs, 0.75, noise=noise)
        # --- facebookresearch/mae forward_encoder / forward_decoder, verbatim in spirit ---
        x = m.patch_embed(imgs) + m.pos_embed[:, 1:, :]
        n, length, d = x.shape
        len_keep = int(length * (1 - 0.75))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x = torch.gather(x, dim=1, index=ids_shuffle[:, :len_keep].unsqueeze(-1).repeat(1, 1, d))
        x = torch.cat(((m.cls_token + m.pos_embed[:, :1, :]).expand(n, -1, -1), x), dim=1)
        for blk in m.blocks:
            x = blk(x)
        x = m.decoder_embed(m.norm(x))
        mask_tokens = m.mask_token.repeat(n, ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, dim=1, index=ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1) + m.decoder_pos_embed
        for blk in m.decoder_blocks:
            x = blk(x)
        ref_pred = m.decoder_pred(m.decoder_norm(x))[:, 1:, :]
    torch.testing.assert_close(pred, ref_pred, rtol=1e-6, atol=1e-6)


def test_backward_reaches_every_trainable_parameter(tiny):
    model = models_mae.mae_vit_tiny_patch4()
    loss, _, _ = model(torch.randn(2, 3, 16, 16))
    loss.backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad


def test_bf16_autocast_forward_is_finite(tiny):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        loss, pred, _ = tiny(torch.randn(2, 3, 16, 16))
    assert torch.isfinite(loss) and pred.shape == (2, 16, 48)


# --------------------------------------------------------------------------- names and shapes
def test_base_state_dict_names_and_shapes_equal_reference():
    with torch.device("meta"):
        model = create_model("mae_vit_base_patch16")
    mine = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert mine == reference_keys()  # same names, shapes and order; 254 entries
    assert len(mine) == 254


def test_reference_shaped_state_dict_loads_strictly():
    """A state dict with exactly the reference's names and shapes loads (strict) into a fresh model."""
    with torch.device("meta"):
        model = create_model("mae_vit_base_patch16")
        sd = {k: torch.empty(shape) for k, shape in reference_keys()}
    if "assign" not in inspect.signature(model.load_state_dict).parameters:
        # torch 2.0 (the Poplar SDK's) cannot load into meta tensors: compare names and shapes instead
        assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == \
            {k: tuple(v.shape) for k, v in sd.items()}
        return
    result = model.load_state_dict(sd, strict=True, assign=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize("name", ["mae_vit_large_patch16", "mae_vit_huge_patch14"])
def test_large_and_huge_shapes(name):
    with torch.device("meta"):
        model = create_model(name)
    sd = model.state_dict()
    dim, depth, patch = {"mae_vit_large_patch16": (1024, 24, 16), "mae_vit_huge_patch14": (1280, 32, 14)}[name]
    assert sd["patch_embed.proj.weight"].shape == (dim, 3, patch, patch)
    assert sd["pos_embed"].shape == (1, (224 // patch) ** 2 + 1, dim)
    assert f"blocks.{depth - 1}.mlp.fc2.bias" in sd and f"blocks.{depth}.norm1.weight" not in sd
    assert sd["decoder_pos_embed"].shape == (1, (224 // patch) ** 2 + 1, 512)
    assert "decoder_blocks.7.attn.qkv.weight" in sd and sd["decoder_pred.weight"].shape == (patch * patch * 3, 512)


def test_state_dict_round_trips_through_a_file(tmp_path):
    torch.manual_seed(2)
    a = models_mae.mae_vit_digits().eval()
    torch.save({"model": a.state_dict()}, tmp_path / "checkpoint.pth")
    torch.manual_seed(3)
    b = models_mae.mae_vit_digits().eval()
    b.load_state_dict(torch.load(tmp_path / "checkpoint.pth", weights_only=True)["model"], strict=True)
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 64)
    with torch.no_grad():
        assert torch.equal(a(imgs, noise=noise)[1], b(imgs, noise=noise)[1])


def test_create_model_registry():
    assert {"mae_vit_base_patch16", "mae_vit_large_patch16", "mae_vit_huge_patch14", "mae_vit_digits",
            "mae_vit_tiny_patch4"} <= set(models_mae.list_models())
    m = create_model("mae_vit_digits", norm_pix_loss=True, gelu_type="tanh")
    assert m.norm_pix_loss and m.patch_embed.img_size == (32, 32) and m.num_patches == 64
    with pytest.raises(KeyError, match="unknown pretraining model 'nope'.*mae_vit_base_patch16"):
        create_model("nope")


def test_gelu_type_and_fused_attention():
    erf = models_mae.mae_vit_tiny_patch4()
    tanh = models_mae.mae_vit_tiny_patch4(gelu_type="tanh")
    assert erf.blocks[0].mlp.act.approximate == "none"
    assert all(b.mlp.act.approximate == "tanh" for b in [*tanh.blocks, *tanh.decoder_blocks])
    assert all(b.attn.fused_attn for b in [*erf.blocks, *erf.decoder_blocks])
    with pytest.raises(ValueError, match="gelu_type"):
        models_mae.mae_vit_tiny_patch4(gelu_type="relu")
    # fused and unfused attention agree
    erf.eval()
    imgs, noise = torch.randn(2, 3, 16, 16), torch.rand(2, 16)
    with torch.no_grad():
        fused = erf(imgs, noise=noise)[1]
        erf.set_fused_attn(False)
        plain = erf(imgs, noise=noise)[1]
    torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- init
def test_initialisation_statistics():
    torch.manual_seed(4)
    m = MaskedAutoencoderViT(img_size=32, patch_size=16, embed_dim=768, depth=1, num_heads=12,
                             decoder_embed_dim=512, decoder_depth=1, decoder_num_heads=16)
    for name, mod in m.named_modules():
        if isinstance(mod, torch.nn.Linear):
            bound = math.sqrt(6 / (mod.in_features + mod.out_features))
            w = mod.weight
            assert w.abs().max() <= bound + 1e-6, name
            assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05), name
            assert torch.count_nonzero(mod.bias) == 0, name
        elif isinstance(mod, torch.nn.LayerNorm):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0) and mod.eps == 1e-6, name
    w = m.patch_embed.proj.weight.reshape(768, -1)  # xavier on the flattened conv weight
    bound = math.sqrt(6 / (w.shape[0] + w.shape[1]))
    assert w.abs().max() <= bound and w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    # the reference leaves the conv bias at PyTorch's default: uniform(+-1/sqrt(fan_in))
    assert m.patch_embed.proj.bias.abs().max() <= 1 / math.sqrt(w.shape[1])
    for token in (m.cls_token, m.mask_token):
        assert token.std().item() == pytest.approx(0.02, rel=0.15) and token.mean().abs() < 0.005
    expect = torch.from_numpy(get_2d_sincos_pos_embed(768, 2, cls_token=True)).float()
    assert torch.equal(m.pos_embed[0], expect) and torch.count_nonzero(m.pos_embed[0, 0]) == 0


# --------------------------------------------------------------------------- pos embed, patches
def test_sincos_layout_width_first_grid0_in_first_half():
    d, g = 16, 3
    emb = get_2d_sincos_pos_embed(d, g)
    omega = 1.0 / 10000 ** (np.arange(d // 4) / (d / 4))
    for h in range(g):
        for w in range(g):
            row = emb[h * g + w]
            # first half encodes grid[0], which runs along the width
            np.testing.assert_allclose(row[: d // 4], np.sin(w * omega), atol=1e-12)
            np.testing.assert_allclose(row[d // 4: d // 2], np.cos(w * omega), atol=1e-12)
            np.testing.assert_allclose(row[d // 2: 3 * d // 4], np.sin(h * omega), atol=1e-12)
            np.testing.assert_allclose(row[3 * d // 4:], np.cos(h * omega), atol=1e-12)


def test_interpolate_pos_embed_for_other_image_size():
    model = models_mae.mae_vit_digits()  # 8x8 grid
    big = torch.from_numpy(get_2d_sincos_pos_embed(96, 16, cls_token=True)).float().unsqueeze(0)
    big[0, 0] = 0.5
    ckpt = {"pos_embed": big.clone()}
    assert interpolate_pos_embed(model, ckpt) is True
    assert ckpt["pos_embed"].shape == model.pos_embed.shape
    assert torch.all(ckpt["pos_embed"][0, 0] == 0.5)  # cls token untouched
    same = {"pos_embed": model.pos_embed.detach().clone()}
    assert interpolate_pos_embed(model, same) is False and torch.equal(same["pos_embed"], model.pos_embed)
    assert interpolate_pos_embed(model, {}) is False


def test_patchify_layout_and_round_trip(tiny):
    imgs = torch.randn(2, 3, 16, 16)
    x = tiny.patchify(imgs)
    assert x.shape == (2, 16, 48)
    # patch (row 1, col 2) holds pixels in (p, q, c) order
    assert torch.equal(x[1, 1 * 4 + 2], imgs[1, :, 4:8, 8:12].permute(1, 2, 0).reshape(-1))
    assert torch.equal(tiny.unpatchify(x), imgs)
    gray = models_mae.mae_vit_tiny_patch4(in_chans=1)
    g = torch.randn(1, 1, 16, 16)
    assert torch.equal(gray.unpatchify(gray.patchify(g)), g)
    with pytest.raises(ValueError, match="patchify"):
        tiny.patchify(torch.randn(1, 3, 16, 12))
