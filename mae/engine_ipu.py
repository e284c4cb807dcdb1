"""One IPU epoch (pretraining, finetuning) and one IPU evaluation, on objects the entries built.

Nothing here imports the SDK: ``training`` is a ``poptorch.trainingModel`` (one call = one
optimizer step over ``batch_size x gradient_accumulation_count x replicas x device_iterations``
images, the loss of every micro-batch out), ``popt`` its optimizer, ``inference`` a
``poptorch.inferenceModel`` returning logits, ``reduce`` sums a list of floats over every poprun
instance (:func:`mae.ipu_comm.instance_sum`). The lr schedule is pushed to the device with
``setOptimizer`` every ``optimizer_update_freq`` steps. Meter lines and metrics.jsonl records are
those of the CPU/GPU engines, with loss averaged and throughput summed over instances.
"""
from __future__ import annotations

import time

import torch

from mae import metrics, optim
from mae.engine_finetune import finetune_line
from mae.engine_pretrain import _step_record
from mae.errors import check_finite
from mae.ipu_mixup import count_correct


def set_lr(popt, training, epoch_f: float, lr: float, scales: list[float], cfg) -> float:
    """Scheduled lr on every group (times its layer-decay scale), pushed to the device."""
    value = optim.lr_at(epoch_f, lr, cfg.min_lr, cfg.warmup_epochs, cfg.epochs)
    for group, scale in zip(popt.param_groups, scales):
        group["lr"] = value * scale
    training.setOptimizer(popt)
    return value


def _mean_over_instances(reduce, loss: float) -> float:
    total, count = reduce([loss, 1.0])
    return total / max(count, 1.0)


def pretrain_one_epoch(training, loader, popt, scales, epoch: int, cfg, info, lr: float, jsonl, reduce) -> dict:
    """One pretraining epoch on the IPUs; returns the epoch record (instance 0 writes the files).
    Each batch is ``(imgs, target, keep, restore, mask)`` from :class:`mae.ipu_masking.MaskingCollate`."""
    steps, header = len(loader), f"Training Epoch: [{epoch}]"
    meters, lr_now = metrics.MetricLogger(), lr
    start = end = time.perf_counter()
    images = 0.0
    for i, batch in enumerate(loader):
        data_time = time.perf_counter() - end
        if i % cfg.optimizer_update_freq == 0:
            lr_now = set_lr(popt, training, epoch + i / steps, lr, scales, cfg)
        loss = check_finite(float(training(*batch).float().mean()), epoch, i,
                            "try a lower --blr or another --loss_scale")
        now = time.perf_counter()
        iter_time, end = now - end, now
        n = batch[0].shape[0]
        images += n
        meters.update(time=iter_time, data=data_time, loss=loss,
                      throughput=n * info.world_size / max(iter_time, 1e-9), LR=lr_now)
        if i % cfg.print_freq == 0 or i == steps - 1:
            mean = _mean_over_instances(reduce, loss)
            if info.is_main:
                print(meters.line(header, i, steps), flush=True)
                jsonl.write(_step_record(epoch, i, steps, mean, lr_now, meters, iter_time, data_time))
    return _epoch_stats(meters, lr_now, time.perf_counter() - start, images, reduce, header, info)


def _epoch_stats(meters, lr_now, elapsed, images, reduce, header, info) -> dict:
    loss_sum, count, total_images = reduce([meters["loss"].avg, 1.0, images])
    stats = {"loss": loss_sum / max(count, 1.0), "lr": lr_now, "epoch_time": elapsed,
             "throughput": total_images / max(elapsed, 1e-9), "images": int(total_images)}
    if info.is_main:
        print(f"{header} done: {meters['loss'].count} steps in {elapsed:.0f} s  loss {stats['loss']:.4f}  "
              f"throughput {stats['throughput']:.1f} images/s", flush=True)
    return stats


def finetune_one_epoch(training, loader, popt, scales, epoch: int, cfg, info, lr: float, log, reduce) -> dict:
    """One finetuning epoch on the IPUs (batches already mixed on the host)."""
    steps = len(loader)
    logger, lr_now = metrics.MetricLogger(), lr
    start = end = time.perf_counter()
    images = 0.0
    for i, (imgs, targets) in enumerate(loader):
        data_time = time.perf_counter() - end
        if i % cfg.optimizer_update_freq == 0:
            lr_now = set_lr(popt, training, epoch + i / steps, lr, scales, cfg)
        loss = check_finite(float(training(imgs, targets).float().mean()), epoch, i,
                            "try a lower --blr or another --loss_scale")
        batch_time = time.perf_counter() - end
        end = time.perf_counter()
        images += imgs.shape[0]
        logger.update(lr=lr_now, loss=loss, time=batch_time, data=data_time,
                      throughput=imgs.shape[0] * info.world_size / max(batch_time, 1e-9))
        if i % cfg.print_freq == 0 or i + 1 == steps:
            mean = _mean_over_instances(reduce, loss)
            if info.is_main:
                print(finetune_line(f"Epoch: [{epoch}]", i, steps, logger.meters), flush=True)
                if log is not None:
                    log({"job": "finetune", "epoch": epoch, "step": i, "steps": steps, "loss": mean, "lr": lr_now,
                         "throughput": logger["throughput"].value})
    return _epoch_stats(logger, lr_now, time.perf_counter() - start, images, reduce, f"Epoch: [{epoch}]", info)


@torch.no_grad()
def evaluate(inference, loader, info, reduce, print_freq: int = 20, header: str = "Test:") -> dict:
    """Top-1, top-5 (%), mean loss and n: padded samples weigh 0, sums over every instance."""
    sums = torch.zeros(4, dtype=torch.float64)  # loss sum, correct@1, correct@5, n
    logger, steps = metrics.MetricLogger(), len(loader)
    end = time.perf_counter()
    for i, (imgs, labels, valid) in enumerate(loader):
        batch = count_correct(inference(imgs), labels, valid)
        sums += batch
        n = max(float(batch[3]), 1.0)
        logger.update(loss=float(batch[0]) / n, acc1=100.0 * float(batch[1]) / n, acc5=100.0 * float(batch[2]) / n,
                      time=time.perf_counter() - end)
        end = time.perf_counter()
        if info.is_main and (i % print_freq == 0 or i + 1 == steps):
            print(finetune_line(header, i, steps, logger.meters), flush=True)
    loss_sum, c1, c5, n = reduce(sums.tolist())
    n = int(round(n))
    if n == 0:
        return {"top1": float("nan"), "top5": float("nan"), "loss": float("nan"), "n": 0}
    return {"top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "loss": loss_sum / n, "n": n}
