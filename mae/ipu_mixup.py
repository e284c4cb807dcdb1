"""Host-side batch preparation for IPU finetuning (pure: no SDK needed, tested everywhere).

As in the reference (``util/ipu_mixup.py``), Mixup/CutMix run on the host, in the data loader's
collate function, so the IPU graph sees mixed images and soft targets; without mixup the targets
are label-smoothed one-hot rows. One soft-target cross entropy serves every case on the device.

    collate = HostCollate(mixup_fn, num_classes, smoothing, half)   # collate_fn of the loader
    loss = soft_target_cross_entropy(logits, soft_targets)
    PaddedShard(dataset, rank, world, multiple)   # validation: this instance's samples, padded to
                                                  # whole device batches; (img, label, valid)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def one_hot_smooth(targets: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """Label-smoothed one-hot rows (timm's convention: off = smoothing / classes)."""
    off = smoothing / num_classes
    out = torch.full((targets.shape[0], num_classes), off, dtype=torch.float32)
    out.scatter_(1, targets.long().view(-1, 1), 1.0 - smoothing + off)
    return out


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``sum(-targets * log_softmax(logits))``."""
    return torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()


def worker_init(worker_id: int) -> None:
    """Give each loader worker its own NumPy stream (timm's Mixup draws from NumPy)."""
    import numpy as np

    np.random.seed(torch.initial_seed() % 2**32)


class HostCollate:
    """``collate_fn``: stack the samples, then Mixup/CutMix (or smoothed one-hot targets); fp16 when half."""

    def __init__(self, mixup_fn=None, num_classes: int = 1000, smoothing: float = 0.0, half: bool = False):
        self.mixup_fn, self.num_classes, self.smoothing = mixup_fn, num_classes, smoothing
        self.dtype = torch.float16 if half else torch.float32

    def __call__(self, batch):
        from torch.utils.data import default_collate

        imgs, targets = default_collate(batch)
        if self.mixup_fn is not None and imgs.shape[0] % 2 == 0:
            imgs, soft = self.mixup_fn(imgs, targets)
        else:
            soft = one_hot_smooth(targets, self.num_classes, self.smoothing)
        return imgs.to(self.dtype), soft.to(self.dtype)


class PaddedShard(torch.utils.data.Dataset):
    """Samples ``rank, rank + world, ...`` of ``dataset``, padded with copies of the first one to a
    multiple of ``multiple``; items are ``(img, label, valid)`` with ``valid`` 0 for padding, so
    sums of ``valid``-weighted counts over every instance see each image exactly once."""

    def __init__(self, dataset, rank: int, world: int, multiple: int):
        self.dataset = dataset
        self.indices = list(range(rank, len(dataset), world))
        self.real = len(self.indices)
        pad = (-self.real) % max(multiple, 1)
        if self.indices:
            self.indices += [self.indices[0]] * pad

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        img, label = self.dataset[self.indices[i]]
        return img, label, int(i < self.real)


def count_correct(logits: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[loss sum, correct@1, correct@5, n]`` (float64) over the valid rows of one batch."""
    logits = logits.float()
    valid = valid.double()
    loss = F.cross_entropy(logits, labels.long(), reduction="none").double()
    k = min(5, logits.shape[1])
    hits = logits.topk(k, dim=1).indices.eq(labels.long().view(-1, 1))
    return torch.stack([(loss * valid).sum(), (hits[:, :1].any(1).double() * valid).sum(),
                        (hits.any(1).double() * valid).sum(), valid.sum()])
