"""Masked Autoencoder with a Vision Transformer backbone (He et al. 2021, arXiv 2111.06377).

Same architecture, initialisation and state-dict names/shapes as facebookresearch/mae's
``models_mae.py`` (checkpoints load both ways), built on timm 1.x ``Block``/``PatchEmbed`` with
fused attention. The masking gather and the decoder's unshuffle go through ``remap.keep`` and
``remap.restore`` (plain PyTorch or the native op; same numbers as the reference).

    model = create_model("mae_vit_base_patch16", norm_pix_loss=True)
    loss, pred, mask = model(imgs, mask_ratio=0.75, noise=None)
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

import remap
from mae.pos_embed import sincos_pos_embed_tensor

__all__ = ["MaskedAutoencoderViT", "MODELS", "create_model", "list_models",
           "mae_vit_base_patch16", "mae_vit_large_patch16", "mae_vit_huge_patch14",
           "mae_vit_digits", "mae_vit_tiny_patch4"]

GELU_TYPES = ("erf", "tanh")


def gelu_layer(gelu_type: str) -> type[nn.Module] | Callable[[], nn.Module]:
    """``erf``: exact GELU (the reference); ``tanh``: the tanh approximation (the IPU configs)."""
    if gelu_type == "erf":
        return nn.GELU
    if gelu_type == "tanh":
        return partial(nn.GELU, approximate="tanh")
    raise ValueError(f"gelu_type must be one of {', '.join(GELU_TYPES)}, got {gelu_type!r}")


class MaskedAutoencoderViT(nn.Module):
    """Masked Autoencoder with VisionTransformer backbone."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3,
                 embed_dim: int = 1024, depth: int = 24, num_heads: int = 16,
                 decoder_embed_dim: int = 512, decoder_depth: int = 8, decoder_num_heads: int = 16,
                 mlp_ratio: float = 4.0, norm_layer: Callable[..., nn.Module] = partial(nn.LayerNorm, eps=1e-6),
                 norm_pix_loss: bool = False, gelu_type: str = "erf", fused_attn: bool = True):
        super().__init__()
        self.in_chans = in_chans
        self.gelu_type = gelu_type
        act_layer = gelu_layer(gelu_type)

        # --- encoder ---
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # fixed sin-cos embedding (kept in the state dict, never trained)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList([
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer, act_layer=act_layer)
            for _ in range(depth)])
        self.norm = norm_layer(embed_dim)

        # --- decoder ---
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, decoder_embed_dim),
                                              requires_grad=False)
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer,
                  act_layer=act_layer)
            for _ in range(decoder_depth)])
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans, bias=True)

        self.norm_pix_loss = norm_pix_loss
        self.set_fused_attn(fused_attn)
        self.initialize_weights()

    # ------------------------------------------------------------------ set-up
    def set_fused_attn(self, enable: bool = True) -> None:
        """Use torch's scaled_dot_product_attention in every block (when this torch has it)."""
        enable = bool(enable) and hasattr(F, "scaled_dot_product_attention")
        for blk in [*self.blocks, *self.decoder_blocks]:
            blk.attn.fused_attn = enable

    def initialize_weights(self) -> None:
        grid = self.patch_embed.grid_size[0]
        with torch.no_grad():
            self.pos_embed.copy_(sincos_pos_embed_tensor(self.pos_embed.shape[-1], grid))
            self.decoder_pos_embed.copy_(sincos_pos_embed_tensor(self.decoder_pos_embed.shape[-1], grid))
        # patch embedding initialised like nn.Linear (instead of nn.Conv2d)
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        # timm's trunc_normal_(std=.02) is effectively normal_(std=0.02): the cutoff is too big (2.)
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)  # following the official JAX ViT
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    @property
    def num_patches(self) -> int:
        return self.patch_embed.num_patches

    # ------------------------------------------------------------------ patches
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs [N, C, H, W] -> [N, L, p*p*C] (patch-major, channels last within a patch)."""
        p = self.patch_embed.patch_size[0]
        n, c, hh, ww = imgs.shape
        if hh != ww or hh % p or c != self.in_chans:
            raise ValueError(f"patchify needs square {self.in_chans}-channel images with a side divisible "
                             f"by {p}, got {tuple(imgs.shape)}")
        h = w = hh // p
        x = imgs.reshape(n, c, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(n, h * w, p**2 * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """[N, L, p*p*C] -> imgs [N, C, H, W]."""
        p = self.patch_embed.patch_size[0]
        c = self.in_chans
        h = w = int(round(x.shape[1] ** 0.5))
        if h * w != x.shape[1] or x.shape[2] != p * p * c:
            raise ValueError(f"unpatchify needs [N, h*h, {p * p * c}], got {tuple(x.shape)}")
        x = x.reshape(x.shape[0], h, w, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], c, h * p, w * p)

    # ------------------------------------------------------------------ masking
    def random_masking(self, x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        """Per-sample random masking by per-sample shuffling (argsort of noise).

        x [N, L, D] -> (x_masked [N, K, D], mask [N, L] with 1 = removed, ids_restore [N, L]),
        K = int(L * (1 - mask_ratio)). ``noise`` [N, L] fixes the choice: the K patches with the
        smallest noise are kept.
        """
        n, length, _ = x.shape
        len_keep = int(length * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(n, length, device=x.device)  # noise in [0, 1]
        elif tuple(noise.shape) != (n, length):
            raise ValueError(f"noise must have shape [N, L] = [{n}, {length}], got {tuple(noise.shape)}")
        ids_shuffle = torch.argsort(noise.to(x.device), dim=1)  # ascend: small is keep, large is remove
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = remap.keep(x, ids_keep)
        mask = torch.ones([n, length], device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, dim=1, index=ids_restore)  # unshuffle to the original order
        return x_masked, mask, ids_restore

    # ------------------------------------------------------------------ forward
    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None):
        x = self.patch_embed(imgs)
        x = x + self.pos_embed[:, 1:, :]  # position before masking
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls_token = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat((cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        return x, mask, ids_restore

    def forward_decoder(self, x: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(x)
        # append mask tokens, unshuffle, add the decoder position embedding
        x = remap.restore(x, ids_restore, self.mask_token.reshape(-1), self.decoder_pos_embed)
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]  # drop the cls token

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the removed patches only.

        imgs [N, C, H, W]; pred [N, L, p*p*C]; mask [N, L], 0 keep, 1 remove.
        """
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = (pred - target) ** 2
        loss = loss.mean(dim=-1)  # [N, L], mean loss per patch
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)  # [N, L, p*p*C]
        loss = self.forward_loss(imgs, pred, mask)
        return loss, pred, mask


# ---------------------------------------------------------------------- factories
_LN = partial(nn.LayerNorm, eps=1e-6)


def mae_vit_base_patch16_dec512d8b(**kwargs) -> MaskedAutoencoderViT:
    return MaskedAutoencoderViT(patch_size=16, embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=512,
                                decoder_depth=8, decoder_num_heads=16, mlp_ratio=4, norm_layer=_LN, **kwargs)


def mae_vit_large_patch16_dec512d8b(**kwargs) -> MaskedAutoencoderViT:
    return MaskedAutoencoderViT(patch_size=16, embed_dim=1024, depth=24, num_heads=16, decoder_embed_dim=512,
                                decoder_depth=8, decoder_num_heads=16, mlp_ratio=4, norm_layer=_LN, **kwargs)


def mae_vit_huge_patch14_dec512d8b(**kwargs) -> MaskedAutoencoderViT:
    return MaskedAutoencoderViT(patch_size=14, embed_dim=1280, depth=32, num_heads=16, decoder_embed_dim=512,
                                decoder_depth=8, decoder_num_heads=16, mlp_ratio=4, norm_layer=_LN, **kwargs)


# recommended archs (decoder: 512 dim, 8 blocks), as the reference names them
mae_vit_base_patch16 = mae_vit_base_patch16_dec512d8b
mae_vit_large_patch16 = mae_vit_large_patch16_dec512d8b
mae_vit_huge_patch14 = mae_vit_huge_patch14_dec512d8b

# encoder of mae_vit_digits; mae.models_vit.vit_digits has the same shapes for finetuning
DIGITS_DIM, DIGITS_DEPTH, DIGITS_HEADS = 96, 4, 4


def mae_vit_digits(**kwargs) -> MaskedAutoencoderViT:
    """Demo model for the 32x32 digits: 64 patches of 4x4, encoder 96/4/4, decoder 64/2/4."""
    kwargs.setdefault("img_size", 32)
    return MaskedAutoencoderViT(patch_size=4, embed_dim=DIGITS_DIM, depth=DIGITS_DEPTH, num_heads=DIGITS_HEADS,
                                decoder_embed_dim=64, decoder_depth=2, decoder_num_heads=4, mlp_ratio=4,
                                norm_layer=_LN, **kwargs)


def mae_vit_tiny_patch4(**kwargs) -> MaskedAutoencoderViT:
    """Test model: 16x16 images, 16 patches of 4x4, encoder 32/2/2, decoder 32/1/2."""
    kwargs.setdefault("img_size", 16)
    return MaskedAutoencoderViT(patch_size=4, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32,
                                decoder_depth=1, decoder_num_heads=2, mlp_ratio=4, norm_layer=_LN, **kwargs)


MODELS: dict[str, Callable[..., MaskedAutoencoderViT]] = {
    "mae_vit_base_patch16": mae_vit_base_patch16,
    "mae_vit_large_patch16": mae_vit_large_patch16,
    "mae_vit_huge_patch14": mae_vit_huge_patch14,
    "mae_vit_base_patch16_dec512d8b": mae_vit_base_patch16_dec512d8b,
    "mae_vit_large_patch16_dec512d8b": mae_vit_large_patch16_dec512d8b,
    "mae_vit_huge_patch14_dec512d8b": mae_vit_huge_patch14_dec512d8b,
    "mae_vit_digits": mae_vit_digits,
    "mae_vit_tiny_patch4": mae_vit_tiny_patch4,
}


def list_models() -> list[str]:
    return sorted(MODELS)


def create_model(name: str, **kwargs) -> MaskedAutoencoderViT:
    """Build a pretraining model by factory name (kwargs go to the constructor, e.g. ``img_size``,
    ``norm_pix_loss``, ``gelu_type``); unknown names raise KeyError listing the known ones."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown pretraining model {name!r}; known: {', '.join(list_models())}") from None
    return factory(**kwargs)
