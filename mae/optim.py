"""Optimisation: effective batch, learning rate, weight-decay groups, warmup + cosine schedule.

API::

    effective_batch(cfg, world_size)        batch_size x gradient_accumulation_count x world_size
                                            (x cfg.replica instead of world_size on IPU)
    resolve_lr(cfg, world_size)             cfg.lr, or blr x effective batch / 256
    param_groups_weight_decay(model, wd, no_weight_decay_list=())
                                            two groups; biases and 1-D params (norms) get no decay
    lr_at(epoch, lr, min_lr, warmup_epochs, epochs)   pure schedule (epoch is fractional)
    adjust_learning_rate(optimizer, epoch, lr, min_lr, warmup_epochs, epochs) -> lr
                                            sets each group's lr (times its "lr_scale", default 1)
    build_adamw(model, cfg, lr, betas=(0.9, 0.95))

The schedule is per iteration: call ``adjust_learning_rate`` with ``epoch + step / steps`` before
each optimizer step (the reference does it at every accumulation boundary).
"""
from __future__ import annotations

import math


def effective_batch(cfg, world_size: int = 1) -> int:
    """Images per optimizer step over the whole job.

    On IPU ``replica`` is the total number of replicas of the job (all poprun instances together);
    elsewhere each of the ``world_size`` processes holds one model copy.
    """
    copies = cfg.replica if getattr(cfg, "device", None) == "ipu" else world_size
    return int(cfg.batch_size) * int(cfg.gradient_accumulation_count) * int(copies)


def resolve_lr(cfg, world_size: int = 1) -> float:
    """Absolute learning rate: ``cfg.lr`` when set, else ``blr * effective_batch / 256``."""
    if cfg.lr is not None:
        return float(cfg.lr)
    return float(cfg.blr) * effective_batch(cfg, world_size) / 256.0


def param_groups_weight_decay(model, weight_decay: float, no_weight_decay_list=()):
    """Parameter groups: weight decay on matrices only (no decay on biases, norms, 1-D params,
    nor on names in ``no_weight_decay_list`` such as ``pos_embed``, ``cls_token``)."""
    from timm.optim import param_groups_weight_decay as timm_groups

    return timm_groups(model, weight_decay=weight_decay, no_weight_decay_list=no_weight_decay_list)


def lr_at(epoch: float, lr: float, min_lr: float, warmup_epochs: float, epochs: float) -> float:
    """Linear warmup from 0 over ``warmup_epochs``, then half-cycle cosine from lr to min_lr."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-12)
    progress = min(max((epoch - warmup_epochs) / span, 0.0), 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def adjust_learning_rate(optimizer, epoch: float, lr: float, min_lr: float, warmup_epochs: float, epochs: float) -> float:
    """Set the scheduled lr on every param group (scaled by the group's ``lr_scale``); return it."""
    value = lr_at(epoch, lr, min_lr, warmup_epochs, epochs)
    for group in optimizer.param_groups:
        group["lr"] = value * group.get("lr_scale", 1.0)
    return value


def build_adamw(model, cfg, lr: float, betas=(0.9, 0.95), no_weight_decay_list=()):
    """AdamW over :func:`param_groups_weight_decay` groups (pretraining betas by default)."""
    import torch

    groups = param_groups_weight_decay(model, cfg.weight_decay, no_weight_decay_list)
    return torch.optim.AdamW(groups, lr=lr, betas=betas)
