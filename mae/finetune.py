"""Finetune a ViT classifier from an MAE pretraining checkpoint: ``python -m mae.finetune``.

    python -m mae.finetune --config digits_finetune --finetune output/digits_pretrain/checkpoint.pth
    python -m mae.finetune --config digits_finetune --finetune none      # from random initialisation
    torchrun --nproc_per_node 2 -m mae.finetune --config ... --resume    # continue the last run
    python -m mae.finetune --config vit_base_finetune --finetune CKPT --data_path DIR   # IPU (Poplar SDK)

The recipe of facebookresearch/mae on timm: AdamW with layer-wise lr decay, drop path, Mixup/CutMix
with label smoothing (soft-target cross entropy), RandAugment and random erasing, per-iteration
warmup + cosine lr. On IPU (``device: ipu``) the ViT runs pipelined over ``pipeline`` with fp16,
loss scaling, gradient accumulation and device iterations, and Mixup/CutMix run on the host in the
loader's collate. Rank 0 writes ``checkpoint.pth`` (atomically) every epoch, ``model_<epoch>.pth``
every ``saveckp_freq`` epochs and at the end, and ``metrics.jsonl``; the validation split is
evaluated after every epoch. Loading rules of ``--finetune``: :func:`mae.checkpoint.load_pretrained`.
"""
from __future__ import annotations

import json
import sys
import time

from mae.checkpoint import load_pretrained  # noqa: F401 (part of this module's API)
from mae.errors import ConfigError, DataError, user_errors


def build_model(cfg):
    from mae import models_vit

    try:
        return models_vit.create_model(
            cfg.model, img_size=cfg.input_size, num_classes=cfg.nb_classes, drop_path_rate=cfg.drop_path,
            global_pool="avg" if cfg.global_pool else "token")
    except KeyError:
        raise ConfigError(f"unknown classifier model '{cfg.model}'; use one of "
                          f"{', '.join(sorted(models_vit.MODELS))}") from None


def build_datasets(cfg):
    from mae import augment, data

    if not cfg.data_path:
        raise DataError("no data: pass --data_path DIR holding train/<class>/* and validation/<class>/*")
    train = data.build_dataset(cfg.data_path, "train", augment.build_transform(True, cfg), cfg.check_images)
    val = data.build_dataset(cfg.data_path, "validation", augment.build_transform(False, cfg), cfg.check_images)
    if len(train.classes) > cfg.nb_classes:
        raise DataError(f"{cfg.data_path}/train has {len(train.classes)} classes but nb_classes is "
                        f"{cfg.nb_classes}; pass --nb_classes {len(train.classes)}")
    if val.classes != train.classes:
        raise DataError(f"{cfg.data_path}: validation classes differ from train classes; use the same class folders")
    return train, val


def mixup_and_criterion(cfg):
    import torch
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if cfg.mixup > 0 or cfg.cutmix > 0:
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                      switch_prob=cfg.mixup_switch_prob, mode=cfg.mixup_mode, label_smoothing=cfg.smoothing,
                      num_classes=cfg.nb_classes)
        return mixup, SoftTargetCrossEntropy()
    if cfg.smoothing > 0:
        return None, LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
    return None, torch.nn.CrossEntropyLoss()


def check_cfg(cfg) -> None:
    for key in ("batch_size", "gradient_accumulation_count", "epochs", "print_freq", "saveckp_freq",
                "device_iterations", "optimizer_update_freq"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be at least 1, got {getattr(cfg, key)}")
    if cfg.mixup_mode not in ("batch", "pair", "elem"):
        raise ConfigError(f"--mixup_mode must be batch, pair or elem, got '{cfg.mixup_mode}'")
    if (cfg.mixup > 0 or cfg.cutmix > 0) and cfg.batch_size % 2:
        raise ConfigError(f"mixup/cutmix need an even batch_size, got {cfg.batch_size}")


def run(cfg) -> dict:
    from mae import job

    check_cfg(cfg)
    j = job.start(cfg)
    stats = _train(cfg, j)
    job.finish(j)
    return stats


def _setup(cfg, j):
    """Model, optimizer, resume or pretrained weights, data; then the device's runner."""
    from mae import checkpoint, lr_decay, optim, precision
    import torch

    model = build_model(cfg)
    if not j.ipu:
        model.to(j.info.device)
    lr = optim.resolve_lr(cfg, j.info.world_size)
    groups = lr_decay.param_groups_lrd(model, cfg.weight_decay, model.no_weight_decay(), cfg.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=lr)
    scaler = precision.make_scaler(j.info.device_type, j.precision)
    start = checkpoint.resume(cfg.resume, j.output_dir, model, optimizer, scaler, cfg.model, log=j.say)
    if start is None and cfg.finetune:
        j.say(load_pretrained(model, cfg.finetune, cfg.model))
    elif start is None:
        j.say("no --finetune checkpoint: training from random initialisation")
    train_set, val_set = build_datasets(cfg)
    mixup_fn, criterion = mixup_and_criterion(cfg)
    if j.ipu:
        from mae import ipu_run

        runner = ipu_run.FinetuneRunner(cfg, j, train_set, model, optimizer, lr, mixup_fn, build_model)
    else:
        from mae import torch_run

        runner = torch_run.FinetuneRunner(cfg, j, train_set, model, optimizer, scaler, lr, mixup_fn, criterion)
    return model, start or 0, runner, val_set


def _train(cfg, j) -> dict:
    from mae import job
    from mae.metrics import Tracker

    model, start_epoch, runner, val_set = _setup(cfg, j)
    if job.begin(cfg, j, runner):
        return {}
    writer = Tracker(j.output_dir, "finetune", cfg) if j.info.is_main else None
    try:
        stats = _epochs(cfg, j, runner, model, val_set, start_epoch, writer.write if writer else None)
    finally:
        if writer:
            writer.close()
        runner.close()
    return stats


def _epochs(cfg, j, runner, model, val_set, start_epoch: int, log) -> dict:
    from mae import checkpoint, config, engine_finetune

    stats, best, start = {}, 0.0, time.time()
    for epoch in range(start_epoch, cfg.epochs):
        epoch_start = time.time()
        train_stats = runner.train(epoch, log)
        if j.info.is_main:
            model_state, optim_state, scaler_state = runner.state()
            keep = (epoch + 1) % cfg.saveckp_freq == 0 or epoch + 1 == cfg.epochs
            checkpoint.save_checkpoint(j.output_dir, {
                "model": model_state, "optimizer": optim_state, "epoch": epoch, "scaler": scaler_state,
                "args": config.to_dict(cfg)}, keep_copy=keep)
        stats = runner.evaluate(val_set)
        best = max(best, stats["top1"])
        if j.info.is_main:
            for line in engine_finetune.summary_lines(stats):
                print(line, flush=True)
            print(f"Max accuracy: {best:.2f}%", flush=True)
            log({"job": "finetune", "epoch": epoch, "train_loss": train_stats.get("loss"),
                 "lr": train_stats.get("lr"), "throughput": train_stats.get("throughput"),
                 "val_top1": stats["top1"], "val_top5": stats["top5"], "val_loss": stats["loss"],
                 "val_n": stats["n"], "epoch_time": time.time() - epoch_start, "elapsed_s": time.time() - start})
    j.say(f"Training time {time.time() - start:.1f}s")
    if j.info.is_main and stats:
        (j.output_dir / "finetune_summary.json").write_text(json.dumps(
            {**stats, "best_top1": best, "epochs": cfg.epochs}, indent=1) + "\n")
    return stats


def main(argv: list[str] | None = None) -> int:
    from mae import config

    with user_errors("mae.finetune"):
        run(config.parse(argv, job="finetune"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
