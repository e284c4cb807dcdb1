"""STAND-IN for PopTorch, for tests only: NOT PopTorch, and never importable as ``poptorch`` by the
product. It lives under tests/ (not an installed package); a test puts it in ``sys.modules`` as
``poptorch`` (the ``poptorch_standin`` fixture of tests/conftest.py) for the duration of one test.

What it is for: with no Poplar SDK anywhere we can reach, this runs mae's whole IPU call path
(``make_options``, ``wrap_*``, ``data_loader``, ``mae.ipu_run``, ``mae.engine_ipu``) on the CPU, so the
code is exercised end to end. It implements only the PopTorch surface mae uses, with the names and
parameters of PopTorch 3.3 (graphcore/poptorch tag sdk/poptorch/3.3.0; tests/poptorch_manifest.json,
checked by tests/test_ipu_conformance.py), and enforces the documented constraints listed in
:mod:`._executor` and :class:`DataLoader`. It says nothing about IPU numerics, memory, compile time
or speed: only an IPU can.
"""
from __future__ import annotations

import torch

from . import optim  # noqa: F401 (poptorch.optim)
from ._executor import PoplarExecutor, PoptorchError  # noqa: F401
from .options import (AutoStage, DataLoaderMode, MeanReductionStrategy, Options, OutputMode,  # noqa: F401
                      PipelinedExecution, ReductionType, ShardedExecution, TensorLocationSettings)

__version__ = "3.3.0+standin"
STANDIN = True


def BeginBlock(layer_to_call: torch.nn.Module, user_id: str = None, ipu_id: int = None) -> torch.nn.Module:
    """Mark ``layer_to_call`` as the start of a block (the module itself is returned, names unchanged)."""
    if not isinstance(layer_to_call, torch.nn.Module):
        raise PoptorchError("BeginBlock takes a torch.nn.Module")
    layer_to_call._standin_block = (user_id if user_id is not None else f"auto{id(layer_to_call)}", ipu_id)
    return layer_to_call


def identity_loss(x: "torch.Tensor", reduction: "str") -> "torch.Tensor":
    if reduction not in ("sum", "mean", "none"):  # ops.py identity_loss: "sum", "mean" or "none"
        raise PoptorchError(f"identity_loss: reduction must be 'sum', 'mean' or 'none', got {reduction!r}")
    out = x.sum() if reduction == "sum" else x.mean() if reduction == "mean" else x
    out = out.view_as(out)
    out._standin_loss = True
    return out


def trainingModel(model, options=None, optimizer=None) -> PoplarExecutor:
    if optimizer is None:
        optimizer = optim.SGD(model.parameters(), lr=0.01)
    if not isinstance(optimizer, optim.Optimizer):
        raise PoptorchError("trainingModel: give a poptorch.optim optimizer (the stand-in's)")
    model.train()
    return PoplarExecutor(model, options, optimizer, training=True)


def inferenceModel(model, options=None) -> PoplarExecutor:
    model.eval()
    return PoplarExecutor(model, options, None, training=False)


_ASYNC_KEYS = {"buffer_size", "miss_sleep_time_in_ms", "load_indefinitely", "early_preload", "sharing_strategy"}


class DataLoader(torch.utils.data.DataLoader):
    """Batches of ``batch_size x deviceIterations x replicationFactor x gradientAccumulation`` (the
    combined batch of one model call). Enforced as PopTorch 3.3's python/__init__.py ``DataLoader``
    does: in ``AsyncRebatched`` mode ``rebatched_worker_size`` must be <= the combined batch size;
    ``async_options`` are keywords of ``AsynchronousDataAccessor``."""

    def __init__(self, options, dataset, batch_size: int = 1, shuffle: bool = None, num_workers: int = 0,
                 drop_last: bool = True, persistent_workers=None, auto_distributed_partitioning: bool = True,
                 mode=DataLoaderMode.Sync, async_options=None, rebatched_worker_size=None, batch_sampler=None,
                 **kwargs):
        if not isinstance(options, Options):
            raise PoptorchError("DataLoader: the first argument must be poptorch.Options")
        ga = options.Training.gradient_accumulation
        self.combinedBatchSize = batch_size * options.device_iterations * options.replication_factor * ga
        if mode == DataLoaderMode.AsyncRebatched and rebatched_worker_size is not None \
                and rebatched_worker_size > self.combinedBatchSize:
            raise PoptorchError(f"The rebatched_worker_size ({rebatched_worker_size}) must be <= to the combined "
                                f"batch size ({self.combinedBatchSize})")
        if mode != DataLoaderMode.Sync:
            bad = set(async_options or {}) - _ASYNC_KEYS
            if bad:
                raise PoptorchError(f"AsynchronousDataAccessor got unexpected keywords {sorted(bad)}")
        self.options = options
        super().__init__(dataset, batch_size=self.combinedBatchSize, shuffle=bool(shuffle), num_workers=num_workers,
                         drop_last=drop_last, persistent_workers=bool(persistent_workers) and num_workers > 0,
                         **kwargs)
