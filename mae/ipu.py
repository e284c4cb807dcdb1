"""PopTorch glue for Graphcore IPUs. Import this module only when the device is ``ipu``.

Nothing here imports poptorch at module level: :func:`require_poptorch` does, and turns its absence
into :class:`SDKNotEnabled` (a :class:`mae.errors.DeviceError`, so entry points exit with status 2
and one line). The stage placement (:func:`assign_stages`) is pure and tested without the SDK.

Training on IPUs (``cfg`` is the job's config: a mapping or an object with attributes)::

    ipu_model = wrap_for_training(model, optimizer, cfg)   # poptorch.trainingModel
    loss = ipu_model(imgs)           # forward + backward + optimizer step, on the device
    # after changing the lr of ``optimizer``'s param groups: ipu_model.setOptimizer(
    #     to_poptorch_optimizer(optimizer, cfg))  (or keep the returned poptorch optimizer)

The wrapped model returns the loss of every micro-batch (``loss.mean()`` is the step's loss);
``model`` (the host copy) keeps the reference state-dict names for checkpoints.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
import torch.nn as nn

from mae.errors import ConfigError, DeviceError

SDK_MESSAGE = ("device ipu needs PopTorch, which cannot be imported here: enable the Poplar SDK "
               "(source <sdk>/enable and install its poptorch wheel into this environment), or use --device cpu|cuda")


class SDKNotEnabled(DeviceError):
    """``--device ipu`` on a machine (or environment) without the Poplar SDK's poptorch."""


def require_poptorch():
    """Return the ``poptorch`` module, or raise :class:`SDKNotEnabled` with a one-line message."""
    try:
        import poptorch  # noqa: PLC0415 (imported only on the IPU path)
    except (ImportError, OSError):  # OSError: wheel present but the SDK libraries are not on the path
        raise SDKNotEnabled(SDK_MESSAGE) from None
    return poptorch


# ---------------------------------------------------------------------------- pure placement
def _split_pipeline(pipeline, enc_depth: int, dec_depth: int) -> tuple[list[int], list[int]]:
    """Validate ``pipeline`` (blocks per IPU) and split it into encoder and decoder stages."""
    where = f"config key `pipeline` {list(pipeline)!r}"
    if not isinstance(pipeline, (list, tuple)) or not pipeline:
        raise ConfigError(f"{where}: give a non-empty list of blocks per IPU, e.g. [3, 3, 3, 3, 2, 2, 2, 2]")
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in pipeline):
        raise ConfigError(f"{where}: every entry must be a whole number of blocks (0 or more)")
    if dec_depth == 0:  # encoder-only model (classifier): the whole list is the encoder
        enc, dec = list(pipeline), []
    else:
        if len(pipeline) % 2:
            raise ConfigError(f"{where}: needs an even length, the first half for the encoder and the second "
                              "half for the decoder, one entry per IPU")
        half = len(pipeline) // 2
        enc, dec = list(pipeline[:half]), list(pipeline[half:])
    if sum(enc) != enc_depth:
        raise ConfigError(f"{where}: the encoder stages hold {sum(enc)} blocks but the model has {enc_depth} "
                          "encoder blocks; make the encoder entries add up to the model's depth")
    if sum(dec) != dec_depth:
        raise ConfigError(f"{where}: the decoder stages hold {sum(dec)} blocks but the model has {dec_depth} "
                          "decoder blocks; make the decoder entries add up to the decoder depth")
    return enc, dec


def ipus_per_replica(pipeline, enc_depth: int, dec_depth: int) -> int:
    """How many IPUs one replica of the model spans under ``pipeline``."""
    enc, _ = _split_pipeline(pipeline, enc_depth, dec_depth)
    return len(enc)


def _block_ipus(stages: list[int]) -> list[int]:
    return [ipu for ipu, count in enumerate(stages) for _ in range(count)]


def assign_stages(pipeline, enc_depth: int, dec_depth: int) -> dict[str, int]:
    """Module name -> IPU, as the reference places MAE on a pipeline of IPUs.

    ``pipeline`` lists blocks per IPU: the first half for the encoder, the second half for the
    decoder (with ``dec_depth == 0`` the whole list is the encoder). The patch embedding goes with
    encoder block 0, the decoder embedding with decoder block 0, each norm with the last block
    before it, and the decoder prediction (and so the loss computed after it) on the last IPU.
    The dict is in execution order: each entry starts a new pipeline stage.
    """
    enc, dec = _split_pipeline(pipeline, enc_depth, dec_depth)
    enc_ipus = _block_ipus(enc)
    stages: dict[str, int] = {"patch_embed": enc_ipus[0]}
    stages.update({f"blocks.{i}": ipu for i, ipu in enumerate(enc_ipus)})
    stages["norm"] = enc_ipus[-1]
    if dec_depth:
        dec_ipus = _block_ipus(dec)
        stages["decoder_embed"] = dec_ipus[0]
        stages.update({f"decoder_blocks.{i}": ipu for i, ipu in enumerate(dec_ipus)})
        stages["decoder_norm"] = dec_ipus[-1]
        stages["decoder_pred"] = len(dec) - 1
    return stages


# ---------------------------------------------------------------------------- poptorch glue
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


def make_options(cfg: Any, ipus: int | None = None):
    """poptorch.Options for training: replication (popdist's options under poprun), gradient
    accumulation, device iterations, executable cache, pipelined execution, RTS, fp16 rounding."""
    poptorch = require_poptorch()
    popdist = _popdist()
    ipus = ipus or int(_get(cfg, "ipus_per_replica", 1) or 1)
    if popdist is not None:  # poprun decides replicas and instances; popdist reads them
        opts = popdist.poptorch.Options(ipus_per_replica=ipus)
    else:
        opts = poptorch.Options()
        opts.replicationFactor(int(_get(cfg, "replica", 1) or 1))
    opts.deviceIterations(int(_get(cfg, "device_iterations", 1) or 1))
    opts.Training.gradientAccumulation(int(_get(cfg, "gradient_accumulation_count", 1) or 1))
    opts.Training.accumulationAndReplicationReductionType(poptorch.ReductionType.Mean)
    opts.outputMode(poptorch.OutputMode.All)
    opts.randomSeed(int(_get(cfg, "seed", 0) or 0))
    cache = _get(cfg, "executable_cache_path")
    if cache:
        opts.enableExecutableCaching(str(cache))
    if ipus > 1:
        opts.setExecutionStrategy(poptorch.PipelinedExecution(poptorch.AutoStage.AutoIncrement))
    if _get(cfg, "rts", False):  # shard the optimizer state over the replicas
        opts.TensorLocations.setOptimizerLocation(
            poptorch.TensorLocationSettings().useOnChipStorage(True).useReplicatedTensorSharding(True))
    if _get(cfg, "half", False):
        opts.Precision.enableStochasticRounding(True)
    return opts


def apply_stages(model: nn.Module, stages: Mapping[str, int]) -> nn.Module:
    """Wrap each named submodule in poptorch.BeginBlock on its IPU (state-dict names unchanged)."""
    poptorch = require_poptorch()
    for k, (name, ipu) in enumerate(stages.items()):
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, poptorch.BeginBlock(getattr(parent, attr), f"stage{k}", ipu_id=ipu))
    return model


def to_poptorch_optimizer(optimizer: torch.optim.Optimizer, cfg: Any):
    """poptorch.optim.AdamW with the same param groups (lr, weight decay, betas, eps) and the
    config's static loss scaling; fp16 accumulators for the first moment when ``half``."""
    poptorch = require_poptorch()
    if isinstance(optimizer, poptorch.optim.Optimizer):
        return optimizer
    d = optimizer.defaults
    keys = ("lr", "weight_decay", "betas", "eps")
    groups = [{"params": g["params"], **{k: g[k] for k in keys if k in g}} for g in optimizer.param_groups]
    half = bool(_get(cfg, "half", False))
    return poptorch.optim.AdamW(
        groups, lr=d.get("lr", 1e-3), betas=d.get("betas", (0.9, 0.95)), eps=d.get("eps", 1e-8),
        weight_decay=d.get("weight_decay", 0.05), loss_scaling=float(_get(cfg, "loss_scale", 1.0) or 1.0),
        accum_type=torch.float16 if half else torch.float32,
        first_order_momentum_accum_type=torch.float16 if half else torch.float32,
        second_order_momentum_accum_type=torch.float32)


class IPUTrainingStep(nn.Module):
    """The MAE forward as poptorch trains it: images in, the loss (marked as the loss) out."""

    def __init__(self, model: nn.Module, mask_ratio: float, half: bool = False):
        super().__init__()
        self.model = model
        self.mask_ratio = float(mask_ratio)
        self.half = half

    def forward(self, imgs: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        poptorch = require_poptorch()
        if self.half:
            imgs = imgs.half()
        loss, _, _ = self.model(imgs, mask_ratio=self.mask_ratio, noise=noise)
        return poptorch.identity_loss(loss, reduction="none")


def wrap_for_training(model: nn.Module, optimizer: torch.optim.Optimizer, cfg: Any):
    """Place ``model`` on the IPUs (stages from ``cfg.pipeline``), cast to fp16 when ``cfg.half``,
    and return ``poptorch.trainingModel`` with options from :func:`make_options`."""
    poptorch = require_poptorch()
    pipeline = list(_get(cfg, "pipeline", []) or [])
    ipus = 1
    if pipeline:
        enc_depth = len(getattr(model, "blocks", []))
        dec_depth = len(getattr(model, "decoder_blocks", []))
        ipus = ipus_per_replica(pipeline, enc_depth, dec_depth)
        wanted = int(_get(cfg, "ipus_per_replica", ipus) or ipus)
        if wanted != ipus:
            raise ConfigError(f"config key `ipus_per_replica` is {wanted} but `pipeline` {pipeline!r} spans "
                              f"{ipus} IPUs; make them agree")
        apply_stages(model, assign_stages(pipeline, enc_depth, dec_depth))
    half = bool(_get(cfg, "half", False))
    if half:
        model.half()
    step = IPUTrainingStep(model, _get(cfg, "mask_ratio", 0.75), half=half)
    return poptorch.trainingModel(step, options=make_options(cfg, ipus),
                                  optimizer=to_poptorch_optimizer(optimizer, cfg))
