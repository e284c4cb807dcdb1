"""ViT classifier for finetuning: global average pooling over the patch tokens + fc_norm.

Built on timm's VisionTransformer with ``global_pool='avg'``: timm then drops the final norm
(``norm`` is an Identity with no parameters) and normalises the pooled features with ``fc_norm``,
which is the classifier of facebookresearch/mae's finetuning. State-dict names are timm's,
identical to the reference (see ``vit_base_patch16_finetune.keys.tsv``): ``cls_token``,
``pos_embed``, ``patch_embed.proj.*``, ``blocks.<i>.*``, ``fc_norm.*``, ``head.*``.
"""
from __future__ import annotations

from functools import partial

import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer as _TimmViT

__all__ = ["VisionTransformer", "vit_base_patch16", "vit_large_patch16", "vit_huge_patch14",
           "vit_digits", "vit_tiny_patch4", "create_model", "MODELS"]


class VisionTransformer(_TimmViT):
    """timm VisionTransformer fixed to the MAE finetuning head (avg pool + fc_norm, no final norm)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("global_pool", "avg")
        kwargs.setdefault("norm_layer", partial(nn.LayerNorm, eps=1e-6))
        kwargs.setdefault("qkv_bias", True)
        kwargs.setdefault("mlp_ratio", 4)
        super().__init__(**kwargs)


def vit_base_patch16(**kwargs) -> VisionTransformer:
    return VisionTransformer(patch_size=16, embed_dim=768, depth=12, num_heads=12, **kwargs)


def vit_large_patch16(**kwargs) -> VisionTransformer:
    return VisionTransformer(patch_size=16, embed_dim=1024, depth=24, num_heads=16, **kwargs)


def vit_huge_patch14(**kwargs) -> VisionTransformer:
    return VisionTransformer(patch_size=14, embed_dim=1280, depth=32, num_heads=16, **kwargs)


# encoder shape of mae_vit_digits (mae/models_mae.py); tests/test_finetune.py checks they agree
DIGITS_DIM, DIGITS_DEPTH, DIGITS_HEADS = 96, 4, 4


def vit_digits(**kwargs) -> VisionTransformer:
    """Small classifier for the digits demo; its encoder matches ``mae_vit_digits``."""
    kwargs.setdefault("img_size", 32)
    kwargs.setdefault("num_classes", 10)
    return VisionTransformer(patch_size=4, embed_dim=DIGITS_DIM, depth=DIGITS_DEPTH,
                             num_heads=DIGITS_HEADS, **kwargs)


def vit_tiny_patch4(**kwargs) -> VisionTransformer:
    """Test classifier for 16x16 images; its encoder matches ``mae_vit_tiny_patch4``."""
    kwargs.setdefault("img_size", 16)
    kwargs.setdefault("num_classes", 10)
    return VisionTransformer(patch_size=4, embed_dim=32, depth=2, num_heads=2, **kwargs)


MODELS = {
    "vit_base_patch16": vit_base_patch16,
    "vit_large_patch16": vit_large_patch16,
    "vit_huge_patch14": vit_huge_patch14,
    "vit_digits": vit_digits,
    "vit_tiny_patch4": vit_tiny_patch4,
}


def create_model(name: str, **kwargs) -> VisionTransformer:
    """Build a classifier by factory name; unknown names raise KeyError listing the known ones."""
    try:
        factory = MODELS[name]
    except KeyError:
        raise KeyError(f"unknown classifier model {name!r}; known: {', '.join(sorted(MODELS))}") from None
    return factory(**kwargs)
