"""Layer-wise learning-rate decay for ViT finetuning (the rule of facebookresearch/mae / BEiT).

num_layers = depth + 1; a parameter of layer ``i`` gets ``lr_scale = decay ** (num_layers - i)``.
cls_token, pos_embed and patch_embed are layer 0, block ``b`` is layer ``b + 1``, everything else
(fc_norm, head) is layer ``num_layers`` with scale 1. Biases, 1-D (norm) parameters and the names in
``no_weight_decay_list`` get no weight decay. The lr schedule multiplies each group's lr by its
``lr_scale``.
"""
from __future__ import annotations

import torch.nn as nn


def layer_id_for_vit(name: str, num_layers: int) -> int:
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return num_layers


def param_groups_lrd(model: nn.Module, weight_decay: float = 0.05, no_weight_decay_list=(),
                     layer_decay: float = 0.75) -> list[dict]:
    """Parameter groups (one per layer and decay/no-decay) carrying ``lr_scale`` and ``weight_decay``."""
    num_layers = len(model.blocks) + 1
    scales = [layer_decay ** (num_layers - i) for i in range(num_layers + 1)]
    groups: dict[str, dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim == 1 or name in no_weight_decay_list:
            kind, decay = "no_decay", 0.0
        else:
            kind, decay = "decay", weight_decay
        layer = layer_id_for_vit(name, num_layers)
        key = f"layer_{layer}_{kind}"
        if key not in groups:
            groups[key] = {"lr_scale": scales[layer], "weight_decay": decay, "params": [],
                           "param_names": []}
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return list(groups.values())
