"""What PopTorch and PopART require of the options, checked before anything is compiled.

Plain Python over the config and the stage placement (no SDK needed, tested everywhere). Each rule
is one PopTorch/PopART constraint, cited where it is documented or enforced (Poplar SDK 3.3:
graphcore/poptorch tag sdk/poptorch/3.3.0, graphcore/popart tag sdk/poplar/3.3.0); a config that
breaks one stops with one sentence naming the key, instead of a compile error an hour later.

    stages = forward_stages(stage_ipus, auto_increment=True)   # pipeline stages PopTorch will make
    check(cfg, stage_ipus, training=True, instances=1)           # ConfigError on the first broken rule

mae.ipu trains with ``PipelinedExecution(AutoStage.AutoIncrement)`` and infers with
``ShardedExecution()`` (stage = IPU), as the reference does; ``pipelined`` says which is checked.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from mae.errors import ConfigError

#: the largest finite fp16 value
FP16_MAX = 65504.0


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def forward_stages(stage_ipus: Sequence[int], auto_increment: bool) -> int:
    """Forward pipeline stages of blocks on ``stage_ipus`` (in execution order).

    PopTorch merges consecutive blocks on the same IPU into one stage (poptorch
    docs/user_guide/overview.rst, "Pipelined execution"); with ``AutoStage.SameAsIpu`` the stage is
    the IPU (python/options.py ``_DefaultStageManager.getStage``)."""
    if not stage_ipus:
        return 1
    if not auto_increment:
        return len(set(stage_ipus))
    return 1 + sum(1 for a, b in zip(stage_ipus, stage_ipus[1:]) if a != b)


def check_stage_ids(stage_ipus: Sequence[int], auto_increment: bool) -> None:
    """``AutoStage.SameAsIpu`` makes the stage the IPU, so revisiting an IPU (the MAE decoder goes back
    to IPU 0) needs ``AutoStage.AutoIncrement`` (poptorch python/options.py, PipelinedExecution,
    example 3): a tensor consumed in an earlier stage than it is produced is an error (popart
    willow/src/transforms/inferpipelinestages.cpp, ``checkOrder``)."""
    if not auto_increment and any(b < a for a, b in zip(stage_ipus, stage_ipus[1:])):
        raise ConfigError(f"config key `pipeline` places blocks on IPUs {list(stage_ipus)} in execution order, "
                          "which revisits an IPU: that needs AutoStage.AutoIncrement, not SameAsIpu")


def check(cfg: Any, stage_ipus: Sequence[int], training: bool, instances: int = 1,
          pipelined: bool | None = None) -> None:
    """Raise ConfigError (one sentence naming the key) when the options break a PopTorch rule.
    ``pipelined`` (default: ``training``): PipelinedExecution(AutoIncrement), else ShardedExecution()."""
    pipelined = training if pipelined is None else pipelined
    replicas = int(_get(cfg, "replica", 1) or 1)
    di = int(_get(cfg, "device_iterations", 1) or 1)
    ga = int(_get(cfg, "gradient_accumulation_count", 1) or 1)
    ipus = len(set(stage_ipus)) if stage_ipus else 1
    if int(_get(cfg, "batch_size", 1) or 0) < 1 or replicas < 1 or di < 1 or ga < 1:
        raise ConfigError("config keys `batch_size`, `replica`, `device_iterations` and "
                          "`gradient_accumulation_count` must each be at least 1")
    # replication and batch sizes: under poprun each instance drives replica / instances whole replicas
    # (popdist.poptorch.Options sets the local replication factor; popdist's source is not public, so
    # this is the reference's arithmetic: 16 replicas over 4 instances on a POD64)
    if replicas % max(instances, 1):
        raise ConfigError(f"config key `replica` is {replicas} but poprun runs {instances} instances: "
                          "make `replica` a multiple of the number of instances")
    # RTS shards tensors over the replicas (popart willow/include/popart/tensorlocation.hpp,
    # ReplicatedTensorSharding: "Do shard tensors over replicas"): one replica has nothing to shard over
    if training and _get(cfg, "rts", False) and replicas < 2:
        raise ConfigError("config key `rts` shards the optimizer state over replicas, but `replica` is 1: "
                          "set --rts false or use 2 or more replicas")
    _check_scale(cfg)
    if ipus < 2:
        return
    check_stage_ids(stage_ipus, auto_increment=pipelined)
    if pipelined:
        _check_depth(stage_ipus, training, ga, di, auto_increment=True)


def _check_scale(cfg: Any) -> None:
    """Static loss scaling multiplies the loss (poptorch python/optim.py ``loss_scaling``): it must be a
    positive finite number; the loss it scales is fp32 in this project (:mod:`mae.ipu_masking`), since
    a scale above fp16's largest value overflows an fp16 loss."""
    scale = float(_get(cfg, "loss_scale", 1.0) or 0.0)
    if not math.isfinite(scale) or scale <= 0:
        raise ConfigError(f"config key `loss_scale` is {scale}: give a positive finite number (1.0 for none)")


def _check_depth(stage_ipus, training: bool, ga: int, di: int, auto_increment: bool) -> None:
    """Enough micro-batches to fill the pipeline (popart willow/src/transforms/pipeline.cpp, "For
    pipelining, depth (...) must equal at least the number of pipeline stages"; poptorch
    docs/user_guide/overview.rst: training doubles the stages but for the last forward one)."""
    fwd = forward_stages(stage_ipus, auto_increment)
    if training:
        need = 2 * fwd - 1
        if ga < need:
            raise ConfigError(f"config key `gradient_accumulation_count` is {ga} but the pipeline over "
                              f"{len(set(stage_ipus))} IPUs has {need} training stages ({fwd} forward, "
                              f"{fwd - 1} backward); PopTorch needs at least {need}")
    elif di < fwd:
        raise ConfigError(f"config key `device_iterations` is {di} but pipelined inference has {fwd} stages; "
                          f"PopTorch needs at least {fwd} (or sharded execution)")
