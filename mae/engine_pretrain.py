"""The pretraining loop (CPU / CUDA; IPU through :mod:`mae.ipu`), in the style of the reference engine.

``run(cfg, hooks=None)`` trains according to a parsed config (:func:`mae.config.parse`):

* data order: a DistributedSampler seeded with ``cfg.seed`` and ``set_epoch(epoch)``; every
  random stream (augmentation, masking noise, loader workers) is reseeded from
  ``(seed, epoch, rank)`` at the start of each epoch, so a run resumed from a checkpoint follows
  exactly the trajectory of an uninterrupted one;
* gradient accumulation over ``gradient_accumulation_count`` micro-batches (DDP ``no_sync`` in
  between); leftover micro-batches at the end of an epoch are dropped;
* lr set per optimizer step: warmup then half-cycle cosine (:mod:`mae.optim`);
* ``precision``: fp32, bf16 (autocast on CUDA and on CPUs with native bf16), fp16 (CUDA, GradScaler);
* rank 0 prints the meter line every ``print_freq`` steps and appends to ``metrics.jsonl``;
* ``checkpoint.pth`` after every epoch, ``model_<epoch>.pth`` every ``saveckp_freq`` epochs and at
  the end; then each hook ``hook(ctx: CheckpointContext)`` runs on rank 0 (pictures, ...).

metrics.jsonl records: ``{"type": "step", "epoch", "step", "steps", "loss", "lr", "throughput",
"time", "data"}`` (loss averaged over ranks) and ``{"type": "epoch", "epoch", "loss", "lr",
"throughput", "epoch_time", "images"}``. After a resume, records of a repeated epoch follow the old ones.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import math
import pathlib
import random
import time
from typing import Any, Callable

import torch

from mae import checkpoint, config, data, dist, metrics, optim
from mae.errors import ConfigError, DataError, DeviceError, UserError, warn


class TrainingError(UserError):
    """Training cannot go on (e.g. the loss became NaN)."""


@dataclasses.dataclass
class CheckpointContext:
    """What a checkpoint hook gets (rank 0 only, after model_<epoch>.pth is written)."""

    model: torch.nn.Module          # unwrapped model, in train mode; hooks must restore the mode they change
    epoch: int                      # the epoch just completed (0-based)
    output_dir: pathlib.Path
    cfg: Any                        # the parsed config
    device: str
    dataset: Any                    # the training dataset
    metrics_path: pathlib.Path      # metrics.jsonl
    checkpoint_path: pathlib.Path


Hook = Callable[[CheckpointContext], None]


def seed_for(seed: int, epoch: int, rank: int, stream: int = 0) -> int:
    """A distinct 63-bit seed for each (seed, epoch, rank, stream)."""
    return ((((seed * 1_000_003) + epoch) * 10_007 + rank) * 101 + stream) % (2**63 - 1)


def seed_everything(value: int) -> None:
    random.seed(value)
    torch.manual_seed(value)
    try:
        import numpy as np

        np.random.seed(value % 2**32)
    except ImportError:  # pragma: no cover
        pass


def check_cfg(cfg) -> None:
    """Values that no config may hold (ConfigError naming the key)."""
    for key in ("batch_size", "gradient_accumulation_count", "epochs", "input_size", "print_freq",
                "saveckp_freq", "generated_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be at least 1, got {getattr(cfg, key)}")
    if cfg.num_workers < 0 or cfg.warmup_epochs < 0:
        raise ConfigError("num_workers and warmup_epochs must not be negative")
    if not 0.0 <= cfg.mask_ratio < 1.0:
        raise ConfigError(f"mask_ratio must be in [0, 1), got {cfg.mask_ratio}")


def default_hooks() -> list[Hook]:
    """``mae.pictures.on_pretrain_checkpoint`` when that module exists."""
    import importlib.util

    if importlib.util.find_spec("mae.pictures") is None:
        return []
    from mae import pictures

    hook = getattr(pictures, "on_pretrain_checkpoint", None)
    return [hook] if hook is not None else []


def build_model(cfg):
    from mae import models_mae

    try:
        return models_mae.create_model(
            cfg.model, img_size=cfg.input_size, norm_pix_loss=cfg.norm_pix_loss, gelu_type=cfg.gelu_type
        )
    except KeyError as err:
        raise ConfigError(str(err.args[0]) + " (key 'model')") from None
    except (AssertionError, ValueError) as err:
        raise ConfigError(f"model {cfg.model} cannot be built with input_size {cfg.input_size}: {err}") from None


def autocast_dtype(precision: str, device_type: str):
    """torch dtype for autocast, or None for fp32 (bf16 on CPUs without native bf16 → fp32)."""
    if precision == "fp32":
        return None
    if precision == "fp16":
        if device_type != "cuda":
            raise ConfigError("precision fp16 needs device cuda; use bf16 or fp32 (on IPU use --half true)")
        return torch.float16
    if device_type == "cpu" and not _cpu_has_bf16():
        warn("this CPU has no native bf16 (AVX512-BF16/AMX); running in fp32")
        return None
    return torch.bfloat16


def _cpu_has_bf16() -> bool:
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def train_one_epoch(model, loader, optimizer, scaler, epoch: int, steps: int, cfg, info, lr: float,
                    amp_dtype, jsonl) -> dict:
    """One pass over ``steps`` micro-batches; returns epoch averages."""
    core = model.module if hasattr(model, "module") else model
    model.train()
    accum = cfg.gradient_accumulation_count
    device = torch.device(info.device)
    noise_gen = torch.Generator(device=device).manual_seed(seed_for(cfg.seed, epoch, info.rank, stream=1))
    meters = metrics.MetricLogger()
    header = f"Training Epoch: [{epoch}]"
    optimizer.zero_grad(set_to_none=True)
    lr_now = optimizer.param_groups[0]["lr"]
    start = end = time.perf_counter()
    for i, (samples, _) in enumerate(loader):
        if i >= steps:
            break
        data_time = time.perf_counter() - end
        if i % accum == 0:
            lr_now = optim.adjust_learning_rate(optimizer, epoch + i / steps, lr, cfg.min_lr,
                                                cfg.warmup_epochs, cfg.epochs)
        samples = samples.to(device, non_blocking=True)
        noise = torch.rand(samples.shape[0], core.num_patches, generator=noise_gen, device=device)
        update = (i + 1) % accum == 0
        sync = contextlib.nullcontext() if update or not info.distributed else model.no_sync()
        with sync:
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                loss, _, _ = model(samples, mask_ratio=cfg.mask_ratio, noise=noise)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrainingError(f"loss is {loss_value} at epoch {epoch} step {i}; stopping "
                                    "(try a lower --blr, more --warmup_epochs or --precision fp32)")
            scaler.scale(loss / accum).backward()
        if update:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        now = time.perf_counter()
        iter_time, end = now - end, now
        meters.update(time=iter_time, data=data_time, loss=loss_value,
                      throughput=samples.shape[0] * info.world_size / max(iter_time, 1e-9), LR=lr_now)
        if i % cfg.print_freq == 0 or i == steps - 1:
            mean_loss = dist.all_reduce_mean(loss_value, info)
            if info.is_main:
                print(meters.line(header, i, steps), flush=True)
                jsonl.write({"type": "step", "epoch": epoch, "step": i, "steps": steps, "loss": mean_loss,
                             "lr": lr_now, "throughput": meters["throughput"].value, "time": iter_time,
                             "data": data_time})
    elapsed = time.perf_counter() - start
    images = steps * cfg.batch_size * info.world_size
    stats = {"loss": dist.all_reduce_mean(meters["loss"].avg, info), "lr": lr_now,
             "throughput": images / max(elapsed, 1e-9), "epoch_time": elapsed, "images": images}
    if info.is_main:
        print(f"{header} done: {steps} steps in {datetime.timedelta(seconds=int(elapsed))}  "
              f"loss {stats['loss']:.4f}  throughput {stats['throughput']:.1f} images/s", flush=True)
    return stats


def run(cfg, hooks: list[Hook] | None = None) -> dict:
    """Pretrain according to ``cfg``; returns the last epoch's stats (empty when nothing ran)."""
    check_cfg(cfg)
    if cfg.device == "ipu":
        from mae import engine_ipu

        return engine_ipu.run(cfg, hooks)
    info = dist.init(cfg.device)
    stats = _run(cfg, info, default_hooks() if hooks is None else hooks)
    dist.cleanup(info)  # only after a normal end: on errors the process exit tears the group down
    return stats


def _run(cfg, info, hooks) -> dict:
    output_dir = pathlib.Path(cfg.output_dir)
    amp_dtype = autocast_dtype(cfg.precision, info.device_type)
    seed_everything(seed_for(cfg.seed, 0, 0, stream=2))  # same initial weights on every rank

    dataset = data.build_pretrain_dataset(cfg)
    sampler = dist.sampler(dataset, info, shuffle=True, seed=cfg.seed)
    loader_gen = torch.Generator()
    loader = torch.utils.data.DataLoader(
        dataset, sampler=sampler, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
        pin_memory=cfg.pin_mem and info.device_type == "cuda", drop_last=True, generator=loader_gen,
    )
    steps = (len(loader) // cfg.gradient_accumulation_count) * cfg.gradient_accumulation_count
    if steps == 0:
        raise DataError(
            f"the training set has {len(dataset)} images: too few for batch_size {cfg.batch_size} x "
            f"gradient_accumulation_count {cfg.gradient_accumulation_count} x {info.world_size} processes; "
            "lower them or add data"
        )

    model = build_model(cfg).to(info.device)
    core = model
    lr = optim.resolve_lr(cfg, info.world_size)
    optimizer = optim.build_adamw(core, cfg, lr, betas=(0.9, 0.95))
    scaler = torch.amp.GradScaler(info.device_type, enabled=amp_dtype == torch.float16)

    start_epoch = 0
    path, ckpt = checkpoint.resolve_resume(cfg.resume, output_dir)
    if ckpt is not None:
        try:
            core.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise checkpoint.CheckpointError(
                f"checkpoint {path} does not fit model {cfg.model} ({str(err).splitlines()[0][:120]})"
            ) from None
        if ckpt.get("scaler"):
            scaler.load_state_dict(ckpt["scaler"])
        start_epoch = int(ckpt["epoch"]) + 1
        if info.is_main:
            print(f"resumed from {path} (epoch {ckpt['epoch']} done)", flush=True)
        del ckpt
    low, high = dist.min_max(start_epoch, info)
    if low != high:
        raise checkpoint.CheckpointError(
            f"ranks disagree on the checkpoint to resume from (epochs {int(low) - 1} to {int(high) - 1}): "
            f"{output_dir} must be the same shared folder on every host, or pass --resume FILE present everywhere"
        )
    if info.distributed:  # wrapped after loading: DDP starts from rank 0's weights on every rank
        ids = [torch.device(info.device).index] if info.device_type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)

    eff = optim.effective_batch(cfg, info.world_size)
    if info.is_main:
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise checkpoint.CheckpointError(f"cannot create output directory {output_dir}: {err.strerror}") from None
        print(f"pretrain {cfg.model} on {info.device} x {info.world_size} process(es), {len(dataset)} images, "
              f"{steps} steps/epoch, effective batch {eff}, lr {lr:.3e} (blr {cfg.blr:g}), "
              f"precision {'fp32' if amp_dtype is None else cfg.precision}, "
              f"output {output_dir}", flush=True)
    if start_epoch >= cfg.epochs:
        if info.is_main:
            print(f"nothing to do: {cfg.epochs} epochs already done", flush=True)
        dist.barrier(info)
        return {}

    jsonl = metrics.Tracker(output_dir, "pretrain", cfg) if info.is_main else None
    stats: dict = {}
    t0 = time.perf_counter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            seed_everything(seed_for(cfg.seed, epoch, info.rank, stream=0))
            sampler.set_epoch(epoch)
            loader_gen.manual_seed(seed_for(cfg.seed, epoch, info.rank, stream=3))
            stats = train_one_epoch(model, loader, optimizer, scaler, epoch, steps, cfg, info, lr, amp_dtype, jsonl)
            keep = (epoch + 1) % cfg.saveckp_freq == 0 or epoch + 1 == cfg.epochs
            if info.is_main:
                jsonl.write({"type": "epoch", "epoch": epoch, **stats})
                state = {"model": core.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                         "scaler": scaler.state_dict(), "args": config.to_dict(cfg)}
                ckpt_path = checkpoint.save_checkpoint(output_dir, state, keep_copy=keep)
                del state
                if keep:
                    _call_hooks(hooks, CheckpointContext(core, epoch, output_dir, cfg, info.device, dataset,
                                                         jsonl.path, ckpt_path))
    finally:
        if jsonl is not None:
            jsonl.close()
    dist.barrier(info)  # every rank leaves together (rank 0 may still be saving)
    if info.is_main:
        total = datetime.timedelta(seconds=int(time.perf_counter() - t0))
        print(f"Training time {total}; checkpoint {output_dir / checkpoint.LATEST}", flush=True)
    return stats


def _call_hooks(hooks, ctx: CheckpointContext) -> None:
    for hook in hooks:
        try:
            hook(ctx)
        except Exception as err:  # noqa: BLE001 - a picture must never stop training
            warn(f"checkpoint hook {getattr(hook, '__name__', hook)} failed at epoch {ctx.epoch}: {err}")
