"""Pretraining on Graphcore IPUs through poptorch; imported only when the config's device is ipu.

The host builds the model and the AdamW param groups exactly as on CPU/GPU; :mod:`mae.ipu`
places the blocks on the pipeline stages of ``cfg.pipeline``, casts to fp16 when ``cfg.half``,
applies loss scaling, replication (popdist under poprun), gradient accumulation and the executable
cache. One call of the training model is one optimizer step over
``batch_size x gradient_accumulation_count x replicas (x device_iterations)`` images. Checkpoints,
meter lines and metrics.jsonl are the same as on CPU/GPU (written by instance 0).

This path needs the Poplar SDK; without poptorch it stops with one line (exit status 2).
"""
from __future__ import annotations

import datetime
import math
import pathlib
import time

from mae.errors import DeviceError


def run(cfg, hooks=None) -> dict:
    from mae import ipu

    poptorch = ipu.require_poptorch()  # one line saying the Poplar SDK must be enabled, exit status 2
    import torch

    from mae import checkpoint, config, data, dist, metrics, optim
    from mae.engine_pretrain import (CheckpointContext, TrainingError, _call_hooks, build_model, default_hooks,
                                     seed_everything, seed_for)

    hooks = default_hooks() if hooks is None else hooks
    info = dist.init("ipu")
    output_dir = pathlib.Path(cfg.output_dir)
    seed_everything(seed_for(cfg.seed, 0, 0, stream=2))
    dataset = data.build_pretrain_dataset(cfg)
    model = build_model(cfg)
    lr = optim.resolve_lr(cfg, info.world_size)
    optimizer = optim.build_adamw(model, cfg, lr, betas=(0.9, 0.95))

    start_epoch = 0
    path, ckpt = checkpoint.resolve_resume(cfg.resume, output_dir)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch = int(ckpt["epoch"]) + 1
        if info.is_main:
            print(f"resumed from {path} (epoch {ckpt['epoch']} done)", flush=True)

    popt = ipu.to_poptorch_optimizer(optimizer, cfg)
    training = ipu.wrap_for_training(model, popt, cfg)
    opts = training.options
    loader = poptorch.DataLoader(opts, dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                 num_workers=cfg.num_workers, mode=poptorch.DataLoaderMode.Async)
    steps = len(loader)
    if steps == 0:
        raise DeviceError(f"the training set has {len(dataset)} images: too few for one IPU step; add data")
    if info.is_main:
        output_dir.mkdir(parents=True, exist_ok=True)
        print(f"pretrain {cfg.model} on IPU: {cfg.replica} replica(s) x {cfg.ipus_per_replica} IPU(s), "
              f"{info.world_size} instance(s), effective batch {optim.effective_batch(cfg, info.world_size)}, "
              f"lr {lr:.3e}, {steps} steps/epoch, output {output_dir}", flush=True)
    jsonl = metrics.Tracker(output_dir, "pretrain", cfg) if info.is_main else None
    stats: dict = {}
    try:
        for epoch in range(start_epoch, cfg.epochs):
            seed_everything(seed_for(cfg.seed, epoch, info.rank))
            gen = torch.Generator().manual_seed(seed_for(cfg.seed, epoch, info.rank, stream=1))
            meters = metrics.MetricLogger()
            start = end = time.perf_counter()
            for i, (imgs, _) in enumerate(loader):
                data_time = time.perf_counter() - end
                lr_now = optim.adjust_learning_rate(popt, epoch + i / steps, lr, cfg.min_lr,
                                                    cfg.warmup_epochs, cfg.epochs)
                training.setOptimizer(popt)
                noise = torch.rand(imgs.shape[0], model.num_patches, generator=gen)
                loss = float(training(imgs, noise.half() if cfg.half else noise).float().mean())
                if not math.isfinite(loss):
                    raise TrainingError(f"loss is {loss} at epoch {epoch} step {i}; stopping "
                                        "(try a lower --blr or a different --loss_scale)")
                now = time.perf_counter()
                iter_time, end = now - end, now
                meters.update(time=iter_time, data=data_time, loss=loss,
                              throughput=imgs.shape[0] * info.world_size / max(iter_time, 1e-9), LR=lr_now)
                if info.is_main and (i % cfg.print_freq == 0 or i == steps - 1):
                    print(meters.line(f"Training Epoch: [{epoch}]", i, steps), flush=True)
                    jsonl.write({"type": "step", "epoch": epoch, "step": i, "steps": steps, "loss": loss,
                                 "lr": lr_now, "throughput": meters["throughput"].value, "time": iter_time,
                                 "data": data_time})
            elapsed = time.perf_counter() - start
            stats = {"loss": meters["loss"].avg, "lr": lr_now, "epoch_time": elapsed,
                     "throughput": meters["throughput"].avg}
            if info.is_main:
                jsonl.write({"type": "epoch", "epoch": epoch, **stats})
                training.copyWeightsToHost()
                state = {"model": {k: v.float() for k, v in model.state_dict().items()},
                         "optimizer": popt.state_dict(), "epoch": epoch, "scaler": None,
                         "args": config.to_dict(cfg)}
                keep = (epoch + 1) % cfg.saveckp_freq == 0 or epoch + 1 == cfg.epochs
                ckpt_path = checkpoint.save_checkpoint(output_dir, state, keep_copy=keep)
                if keep:
                    _call_hooks(hooks, CheckpointContext(model, epoch, output_dir, cfg, "ipu", dataset,
                                                         jsonl.path, ckpt_path))
                print(f"Training Epoch: [{epoch}] done in {datetime.timedelta(seconds=int(elapsed))}", flush=True)
    finally:
        if jsonl is not None:
            jsonl.close()
        training.detachFromDevice()
    return stats
