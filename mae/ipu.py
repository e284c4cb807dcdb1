"""PopTorch glue for Graphcore IPUs. Imported only when the config's device is ``ipu``.

Nothing here imports poptorch at module level: :func:`require_poptorch` does, and turns its absence
into :class:`SDKNotEnabled` (a :class:`mae.errors.DeviceError`, so entry points exit with status 2
and one line). The pure parts live beside it: placement in :mod:`mae.ipu_stages`, optimizer state
conversion in :mod:`mae.ipu_state`, host-side mixup and validation shards in :mod:`mae.ipu_mixup`,
host-side masking matrices in :mod:`mae.ipu_masking`, the options' PopTorch rules in :mod:`mae.ipu_checks`
(checked before anything is compiled). Training pipelines with ``AutoStage.AutoIncrement`` (the MAE
decoder revisits IPU 0); inference is sharded, as the reference evaluates
(``options.finetune_options(opt_type="eval")``): pipelined inference would need as many device
iterations as stages.

    opts = make_options(cfg, ipus)                       # poptorch.Options from the config keys
    popt = to_poptorch_optimizer(optimizer, cfg, model)  # same groups, Adam moments and step carried
    training = wrap_for_training(model, popt, cfg)       # MAE: images, target, keep/restore/mask -> loss
    training = wrap_classifier(model, popt, cfg)         # ViT: images, soft targets -> loss
    inference = wrap_inference(model, cfg)               # ViT: images -> logits
    loader = data_loader(opts, dataset, cfg, ...)        # poptorch.DataLoader (rebatched async)
    torch_state = optimizer_state(popt, optimizer, model)  # back to a torch AdamW state dict
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from mae import ipu_checks, ipu_masking, ipu_state
from mae.errors import ConfigError, DeviceError
from mae.ipu_mixup import soft_target_cross_entropy
from mae.ipu_stages import _split_pipeline, assign_stages, ipus_per_replica  # noqa: F401 (re-exported)

SDK_MESSAGE = ("device ipu needs PopTorch, which cannot be imported here: the Poplar SDK must be enabled "
               "(source <sdk>/enable and install its poptorch wheel into this environment, e.g. "
               "make install-ipu SDK=<sdk>), or use --device cpu|cuda")


class SDKNotEnabled(DeviceError):
    """``--device ipu`` on a machine (or environment) without the Poplar SDK's poptorch."""


def require_poptorch():
    """Return the ``poptorch`` module, or raise :class:`SDKNotEnabled` with a one-line message."""
    try:
        import poptorch  # noqa: PLC0415 (imported only on the IPU path)
    except (ImportError, OSError):  # OSError: wheel present but the SDK libraries are not on the path
        raise SDKNotEnabled(SDK_MESSAGE) from None
    return poptorch


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    if isinstance(cfg, Mapping):
        return cfg.get(key, default)
    return getattr(cfg, key, default)


def _popdist():
    """The popdist module when this process runs under poprun, else None."""
    try:
        import popdist  # noqa: PLC0415
        import popdist.poptorch  # noqa: F401, PLC0415
    except ImportError:
        return None
    return popdist if popdist.isPopdistEnvSet() else None


def make_options(cfg: Any, ipus: int | None = None, training: bool = True):
    """poptorch.Options: replication (popdist's under poprun), device iterations, gradient
    accumulation, executable cache, pipelining, RTS, fp16 rounding and partials, memory proportion."""
    poptorch = require_poptorch()
    popdist = _popdist()
    ipus = ipus or int(_get(cfg, "ipus_per_replica", 1) or 1)
    if popdist is not None:  # poprun decides replicas and instances; popdist reads them
        opts = popdist.poptorch.Options(ipus_per_replica=ipus)
    else:
        opts = poptorch.Options()
        opts.replicationFactor(int(_get(cfg, "replica", 1) or 1))
    opts.deviceIterations(int(_get(cfg, "device_iterations", 1) or 1))
    opts.outputMode(poptorch.OutputMode.All)
    opts.randomSeed(int(_get(cfg, "seed", 0) or 0))
    if training:
        opts.Training.gradientAccumulation(int(_get(cfg, "gradient_accumulation_count", 1) or 1))
        opts.Training.accumulationAndReplicationReductionType(poptorch.ReductionType.Mean)
    cache = _get(cfg, "executable_cache_path")
    if cache:
        opts.enableExecutableCaching(str(cache))
    if ipus > 1:
        if training:
            opts.setExecutionStrategy(poptorch.PipelinedExecution(poptorch.AutoStage.AutoIncrement))
        else:  # the reference's evaluation: one batch flows through the IPUs in turn
            opts.setExecutionStrategy(poptorch.ShardedExecution())
        opts.setAvailableMemoryProportion({f"IPU{i}": float(_get(cfg, "available_memory_proportion", 0.15))
                                           for i in range(ipus)})
    if training and _get(cfg, "rts", False):  # shard the optimizer state over the replicas
        opts.TensorLocations.setOptimizerLocation(
            poptorch.TensorLocationSettings().useOnChipStorage(True).useReplicatedTensorSharding(True))
    if _get(cfg, "half", False):
        opts.Precision.enableStochasticRounding(training)
        if _get(cfg, "half_partials", True):
            opts.Precision.setPartialsType(torch.float16)
    return opts


def apply_stages(model: nn.Module, stages: Mapping[str, int]) -> nn.Module:
    """Wrap each named submodule in poptorch.BeginBlock on its IPU (state-dict names unchanged)."""
    poptorch = require_poptorch()
    for k, (name, ipu) in enumerate(stages.items()):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, poptorch.BeginBlock(getattr(parent, attr), f"stage{k}", ipu_id=ipu))
    return model


def to_poptorch_optimizer(optimizer: torch.optim.Optimizer, cfg: Any, model: nn.Module | None = None):
    """poptorch.optim.AdamW with the same param groups (lr, weight decay, betas, eps), the config's
    static loss scaling, fp16 first-moment accumulators when ``half``; with ``model``, the torch
    optimizer's state (Adam moments and step, e.g. from ``--resume``) is carried to the IPU."""
    poptorch = require_poptorch()
    if isinstance(optimizer, poptorch.optim.Optimizer):
        return optimizer
    d = optimizer.defaults
    hyper = ipu_state.group_hyper(optimizer.param_groups)
    groups = [{"params": g["params"], **h} for g, h in zip(optimizer.param_groups, hyper)]
    half = bool(_get(cfg, "half", False))
    popt = poptorch.optim.AdamW(
        groups, lr=d.get("lr", 1e-3), betas=d.get("betas", (0.9, 0.95)), eps=d.get("eps", 1e-8),
        weight_decay=d.get("weight_decay", 0.05), loss_scaling=float(_get(cfg, "loss_scale", 1.0) or 1.0),
        accum_type=torch.float16 if half else torch.float32,
        first_order_momentum_accum_type=torch.float16 if half else torch.float32,
        second_order_momentum_accum_type=torch.float32)
    if model is not None and optimizer.state:
        names = ipu_state.index_names(optimizer, model)
        carried = ipu_state.torch_to_ipu(optimizer.state_dict(), names, half=half)
        current = popt.state_dict()
        popt.load_state_dict({**current, "ipu_state": carried, "ipu_param": current.get("ipu_param") or {}})
    return popt


def optimizer_state(popt, optimizer: torch.optim.Optimizer, model: nn.Module) -> dict:
    """The torch AdamW state dict of the IPU optimizer (after ``copyWeightsToHost``)."""
    sd = popt.state_dict()
    names = ipu_state.index_names(optimizer, model)
    groups = optimizer.state_dict()["param_groups"]
    return ipu_state.ipu_to_torch(sd.get("ipu_state") or {}, groups, names)


class IPUTrainingStep(nn.Module):
    """The MAE step as the reference trains it on IPUs: images, the fp32 target and the host-built
    keep/restore/mask matrices in (:mod:`mae.ipu_masking`), masking by matmuls, the loss in fp32."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, imgs, target, keep, restore, mask) -> torch.Tensor:
        poptorch = require_poptorch()
        pred = ipu_masking.matmul_forward(self.model, imgs, keep, restore)
        return poptorch.identity_loss(ipu_masking.fp32_loss(pred, target, mask), reduction="none")


class ClassifierStep(nn.Module):
    """ViT finetuning step: images and soft targets (mixed on the host) in, the loss out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, imgs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        poptorch = require_poptorch()
        logits = self.model(imgs).float()
        loss = soft_target_cross_entropy(logits, targets.float())
        return poptorch.identity_loss(loss, reduction="none")


class ClassifierEval(nn.Module):
    """ViT inference: images in, fp32 logits out (top-k and sums on the host)."""

    def __init__(self, model: nn.Module, half: bool = False):
        super().__init__()
        self.model, self.half = model, half

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return self.model(imgs.half() if self.half else imgs).float()


def _instances() -> int:
    popdist = _popdist()
    return int(popdist.getNumInstances()) if popdist is not None else 1


def _place(model: nn.Module, cfg: Any, classifier: bool, training: bool) -> int:
    """Check the options against PopTorch's rules, then put the blocks on the pipeline stages of
    ``cfg.pipeline``; return the IPUs per replica."""
    pipeline = list(_get(cfg, "pipeline", []) or [])
    stages: dict = {}
    ipus = 1
    if pipeline:
        enc_depth = len(getattr(model, "blocks", []))
        dec_depth = len(getattr(model, "decoder_blocks", []))
        ipus = ipus_per_replica(pipeline, enc_depth, dec_depth)
        stages = assign_stages(pipeline, enc_depth, dec_depth, classifier=classifier)
    wanted = int(_get(cfg, "ipus_per_replica", ipus) or ipus)
    if wanted != ipus:
        raise ConfigError(f"config key `ipus_per_replica` is {wanted} but `pipeline` {pipeline!r} spans "
                          f"{ipus} IPUs; make them agree")
    ipu_checks.check(cfg, list(stages.values()), training=training, instances=_instances())
    if stages:
        apply_stages(model, stages)
    return ipus


def wrap_for_training(model: nn.Module, optimizer, cfg: Any):
    """MAE pretraining: place ``model`` on the IPUs, cast to fp16 when ``cfg.half``, and return
    ``poptorch.trainingModel`` with options from :func:`make_options`."""
    poptorch = require_poptorch()
    ipus = _place(model, cfg, classifier=False, training=True)
    if _get(cfg, "half", False):
        model.half()
    return poptorch.trainingModel(IPUTrainingStep(model), options=make_options(cfg, ipus),
                                  optimizer=to_poptorch_optimizer(optimizer, cfg))


def wrap_classifier(model: nn.Module, optimizer, cfg: Any):
    """ViT finetuning: the pipelined classifier (fp16 when ``cfg.half``) as a poptorch.trainingModel."""
    poptorch = require_poptorch()
    ipus = _place(model, cfg, classifier=True, training=True)
    if _get(cfg, "half", False):
        model.half()
    return poptorch.trainingModel(ClassifierStep(model), options=make_options(cfg, ipus),
                                  optimizer=to_poptorch_optimizer(optimizer, cfg))


def wrap_inference(model: nn.Module, cfg: Any):
    """ViT validation: the classifier sharded over its IPUs as a poptorch.inferenceModel (logits out)."""
    poptorch = require_poptorch()
    ipus = _place(model, cfg, classifier=True, training=False)
    half = bool(_get(cfg, "half", False))
    if half:
        model.half()
    model.eval()
    return poptorch.inferenceModel(ClassifierEval(model, half), options=make_options(cfg, ipus, training=False))


def data_loader(opts, dataset, cfg: Any, *, shuffle: bool, collate_fn=None, drop_last: bool = True,
                auto_distributed_partitioning: bool = True, worker_init_fn=None):
    """poptorch.DataLoader in the config's ``loader_mode`` (rebatched asynchronous by default)."""
    poptorch = require_poptorch()
    modes = {"sync": poptorch.DataLoaderMode.Sync, "async": poptorch.DataLoaderMode.Async,
             "rebatch": poptorch.DataLoaderMode.AsyncRebatched}
    mode = modes[_get(cfg, "loader_mode", "rebatch")]
    workers = int(_get(cfg, "num_workers", 0) or 0)
    batch_size = int(_get(cfg, "batch_size", 1))
    kwargs = {}
    if mode is not poptorch.DataLoaderMode.Sync:
        kwargs["async_options"] = {"load_indefinitely": True}
    if mode is poptorch.DataLoaderMode.AsyncRebatched:
        # PopTorch asserts rebatched_worker_size <= the combined batch (python/__init__.py, DataLoader)
        kwargs["rebatched_worker_size"] = min(int(_get(cfg, "rebatched_worker_size", 128)),
                                              combined_batch(opts, batch_size))
    return poptorch.DataLoader(opts, dataset, batch_size=batch_size, shuffle=shuffle,
                               drop_last=drop_last, num_workers=workers, collate_fn=collate_fn,
                               persistent_workers=workers > 0, worker_init_fn=worker_init_fn,
                               auto_distributed_partitioning=auto_distributed_partitioning, mode=mode,
                               **kwargs)


def combined_batch(opts, batch_size: int) -> int:
    """Images of one model call: micro-batch x device iterations x replicas x gradient accumulation."""
    return (batch_size * int(opts.device_iterations) * int(opts.replication_factor)
            * int(opts.Training.gradient_accumulation))
