"""One seeding scheme for every job and device.

Every random stream is seeded from ``(seed, epoch, rank, stream)``:

* :data:`INIT` (epoch 0, rank 0): model initialisation, the same weights on every rank;
* :data:`EPOCH`: Python/NumPy/torch global generators (augmentation) at the start of each epoch;
* :data:`NOISE`: the MAE masking noise generator of each epoch;
* :data:`LOADER`: the loader's shuffling/worker-seed generator of each epoch.

So a run resumed from a checkpoint follows exactly the trajectory of an uninterrupted one.
"""
from __future__ import annotations

import random

EPOCH, NOISE, INIT, LOADER = 0, 1, 2, 3


def seed_for(seed: int, epoch: int, rank: int, stream: int = EPOCH) -> int:
    """A distinct 63-bit seed for each (seed, epoch, rank, stream)."""
    return ((((seed * 1_000_003) + epoch) * 10_007 + rank) * 101 + stream) % (2**63 - 1)


def seed_everything(value: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    import torch

    random.seed(value)
    torch.manual_seed(value)
    try:
        import numpy as np

        np.random.seed(value % 2**32)
    except ImportError:  # pragma: no cover
        pass


def seed_init(seed: int) -> None:
    """Before building the model: the same initial weights on every rank."""
    seed_everything(seed_for(seed, 0, 0, INIT))


def seed_epoch(seed: int, epoch: int, rank: int) -> None:
    """At the start of each epoch: augmentation streams of this rank."""
    seed_everything(seed_for(seed, epoch, rank, EPOCH))


def generator(seed: int, epoch: int, rank: int, stream: int, device="cpu"):
    """A torch.Generator on ``device`` seeded for (seed, epoch, rank, stream)."""
    import torch

    return torch.Generator(device=device).manual_seed(seed_for(seed, epoch, rank, stream))
