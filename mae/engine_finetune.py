"""Finetuning step loop and exact (distributed) evaluation, in the style of facebookresearch/mae's
``engine_finetune.py``.

Meter lines use the finetune variant of the reference logger, ``name: value (avg)``, two spaces
between meters, so the benchmark expressions ``loss:?[ \\t]*(...)`` and ``throughput:?[ \\t]*(\\d+)``
read them.

Evaluation shards the dataset by index (rank, rank + world, ...) — no DistributedSampler padding —
and sums loss, correct counts and sample counts over ranks, so every sample counts exactly once
whatever the world size.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from mae import precision as precision_policy
from mae.errors import check_finite
from mae.metrics import MetricLogger, SmoothedValue

FINETUNE_FORMATS = {"lr": "{:.6f}", "loss": "{:.4f}", "time": "{:.4f}", "data": "{:.4f}",
                    "throughput": "{:.1f}", "acc1": "{:.3f}", "acc5": "{:.3f}"}


def finetune_line(header: str, i: int, n: int, meters: dict[str, SmoothedValue]) -> str:
    """``header [ i/n]  name: value (avg)  ...`` — the finetune meter line."""
    width = len(str(n))
    parts = [f"{header} [{i:>{width}}/{n}]"]
    for name, m in meters.items():
        fmt = FINETUNE_FORMATS.get(name, "{:.4f}")
        parts.append(f"{name}: {fmt.format(m.value)} ({fmt.format(m.avg)})")
    return "  ".join(parts)


def autocast(device_type: str, prec):
    """The autocast of the job's :class:`mae.precision.Precision` (a config value is resolved first)."""
    if isinstance(prec, str):
        prec = precision_policy.resolve(prec, device_type)
    return precision_policy.autocast(device_type, prec)


def train_one_epoch(model, criterion, loader, optimizer, epoch: int, *, device, schedule, accum_iter: int = 1,
                    mixup_fn=None, scaler=None, clip_grad=None, precision="fp32", print_freq=20,
                    world_size=1, log=None, is_main=True):
    """One epoch; ``schedule(optimizer, fractional_epoch) -> lr`` sets the lr per accumulation step.

    ``log(record)`` (rank 0) receives one dict per printed step. Returns the epoch averages.
    """
    model.train(True)
    logger = MetricLogger()
    steps = len(loader)
    optimizer.zero_grad(set_to_none=True)
    device_type = torch.device(device).type
    end = time.perf_counter()
    for step, (samples, targets) in enumerate(loader):
        data_time = time.perf_counter() - end
        if step % accum_iter == 0:
            lr = schedule(optimizer, step / steps + epoch)
        samples = samples.to(device, non_blocking=True)
        targets = targets.to(device, non_blocking=True)
        if mixup_fn is not None:
            samples, targets = mixup_fn(samples, targets)
        with autocast(device_type, precision):
            outputs = model(samples)
        loss = criterion(outputs.float(), targets)
        loss_value = check_finite(loss.item(), epoch, step)
        loss = loss / accum_iter
        update = (step + 1) % accum_iter == 0 or step + 1 == steps
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if update:
            if scaler is not None:
                scaler.unscale_(optimizer)
            if clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if device_type == "cuda":
            torch.cuda.synchronize()
        batch_time = time.perf_counter() - end
        end = time.perf_counter()
        logger.update(lr=optimizer.param_groups[-1]["lr"], loss=loss_value, time=batch_time, data=data_time,
                      throughput=samples.shape[0] * world_size / max(batch_time, 1e-9))
        if is_main and (step % print_freq == 0 or step + 1 == steps):
            print(finetune_line(f"Epoch: [{epoch}]", step, steps, logger.meters), flush=True)
            if log is not None:
                log({"job": "finetune", "epoch": epoch, "step": step, "steps": steps,
                     "loss": loss_value, "lr": optimizer.param_groups[-1]["lr"],
                     "throughput": logger["throughput"].value})
    return {name: m.avg for name, m in logger.meters.items()}


def shard_indices(n: int, rank: int, world_size: int) -> range:
    """This rank's samples: rank, rank + world, ... — a partition of range(n), nothing padded."""
    return range(rank, n, world_size)


@torch.no_grad()
def evaluate(model, dataset, *, batch_size: int, device, rank: int = 0, world_size: int = 1,
             distributed: bool = False, precision: str = "fp32", num_workers: int = 0, print_freq: int = 20,
             is_main: bool = True, header: str = "Test:") -> dict:
    """Top-1, top-5 (%), mean cross-entropy loss and n over the whole ``dataset``.

    Each rank evaluates its index shard; sums are all-reduced, so n == len(dataset) exactly.
    """
    model.eval()
    device_type = torch.device(device).type
    loader = DataLoader(Subset(dataset, shard_indices(len(dataset), rank, world_size)), batch_size=batch_size,
                        shuffle=False, drop_last=False, num_workers=num_workers,
                        pin_memory=device_type == "cuda")
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, correct@1, correct@5, n
    logger = MetricLogger()
    steps = len(loader)
    end = time.perf_counter()
    for step, (images, target) in enumerate(loader):
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        with autocast(device_type, precision):
            output = model(images)
        output = output.float()
        loss = F.cross_entropy(output, target, reduction="sum")
        k = min(5, output.shape[1])
        correct = output.topk(k, dim=1).indices.eq(target[:, None])
        c1 = correct[:, :1].sum()
        c5 = correct.sum()
        n = images.shape[0]
        sums += torch.stack([loss.double(), c1.double(), c5.double(), torch.tensor(float(n), device=device,
                                                                                  dtype=torch.float64)])
        logger.update(n=n, loss=loss.item() / n, acc1=100.0 * c1.item() / n, acc5=100.0 * c5.item() / n)
        logger.update(time=time.perf_counter() - end)
        end = time.perf_counter()
        if is_main and (step % print_freq == 0 or step + 1 == steps):
            print(finetune_line(header, step, steps, logger.meters), flush=True)
    if distributed:
        import torch.distributed as td

        td.all_reduce(sums)
    loss_sum, c1, c5, n = sums.tolist()
    n = int(round(n))
    if n == 0:
        return {"top1": math.nan, "top5": math.nan, "loss": math.nan, "n": 0}
    return {"top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "loss": loss_sum / n, "n": n}


def summary_lines(stats: dict) -> list[str]:
    """The reference's closing lines of an evaluation."""
    return [f"* Acc@1 {stats['top1']:.3f} Acc@5 {stats['top5']:.3f} loss {stats['loss']:.3f}",
            f"Accuracy of the network on the {stats['n']} test images: {stats['top1']:.1f}%"]
