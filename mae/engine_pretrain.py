"""One pretraining epoch on CPU / CUDA, in the style of facebookresearch/mae's ``engine_pretrain.py``.

The entry point :mod:`mae.pretrain` builds everything (data, model, optimizer, resume, device) and
calls :func:`train_one_epoch` once per epoch; the IPU epoch is :func:`mae.engine_ipu.pretrain_one_epoch`.

* gradient accumulation over ``gradient_accumulation_count`` micro-batches (DDP ``no_sync`` in
  between); the caller passes ``steps``, a whole number of optimizer steps;
* lr set per optimizer step: warmup then half-cycle cosine (:mod:`mae.optim`);
* masking noise from the epoch's own generator (:mod:`mae.seeding`), autocast from the job's
  precision (:mod:`mae.precision`), a non-finite loss stops the job (:func:`mae.errors.check_finite`);
* rank 0 prints the meter line every ``print_freq`` steps and appends to ``metrics.jsonl``:
  ``{"type": "step", "epoch", "step", "steps", "loss", "lr", "throughput", "time", "data"}``
  (loss averaged over ranks).
"""
from __future__ import annotations

import contextlib
import datetime
import time

import torch

from mae import dist, fast_transforms, metrics, optim, precision, seeding
from mae.errors import check_finite


def _step_record(epoch, i, steps, loss, lr, meters, iter_time, data_time) -> dict:
    return {"type": "step", "epoch": epoch, "step": i, "steps": steps, "loss": loss, "lr": lr,
            "throughput": meters["throughput"].value, "time": iter_time, "data": data_time}


def train_one_epoch(model, loader, optimizer, scaler, epoch: int, steps: int, cfg, info, lr: float,
                    prec: precision.Precision, jsonl) -> dict:
    """One pass over ``steps`` micro-batches; returns epoch averages."""
    core = model.module if hasattr(model, "module") else model
    model.train()
    accum = cfg.gradient_accumulation_count
    device = torch.device(info.device)
    noise_gen = seeding.generator(cfg.seed, epoch, info.rank, seeding.NOISE, device=device)
    meters, header = metrics.MetricLogger(), f"Training Epoch: [{epoch}]"
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
        samples = fast_transforms.model_input(samples.to(device, non_blocking=True))  # uint8: normalised here
        noise = torch.rand(samples.shape[0], core.num_patches, generator=noise_gen, device=device)
        update = (i + 1) % accum == 0
        sync = contextlib.nullcontext() if update or not info.distributed else model.no_sync()
        with sync:
            with precision.autocast(device.type, prec):
                loss, _, _ = model(samples, mask_ratio=cfg.mask_ratio, noise=noise)
            loss_value = check_finite(loss.item(), epoch, i)
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
                jsonl.write(_step_record(epoch, i, steps, mean_loss, lr_now, meters, iter_time, data_time))
    return epoch_stats(meters, lr_now, time.perf_counter() - start, steps * cfg.batch_size * info.world_size,
                       header, info)


def epoch_stats(meters, lr_now: float, elapsed: float, images: int, header: str, info) -> dict:
    """The epoch record (loss averaged over ranks) and the closing line on rank 0."""
    stats = {"loss": dist.all_reduce_mean(meters["loss"].avg, info), "lr": lr_now,
             "throughput": images / max(elapsed, 1e-9), "epoch_time": elapsed, "images": images}
    if info.is_main:
        steps = meters["loss"].count
        print(f"{header} done: {steps} steps in {datetime.timedelta(seconds=int(elapsed))}  "
              f"loss {stats['loss']:.4f}  throughput {stats['throughput']:.1f} images/s", flush=True)
    return stats
