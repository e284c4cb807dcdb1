"""Finetune a ViT classifier from an MAE pretraining checkpoint: ``python -m mae.finetune``.

    python -m mae.finetune --config digits_finetune --finetune output/digits_pretrain/checkpoint.pth
    python -m mae.finetune --config digits_finetune --finetune none      # from random initialisation
    torchrun --nproc_per_node 2 -m mae.finetune --config ... --resume    # continue the last run

The recipe of facebookresearch/mae on timm: AdamW with layer-wise lr decay, drop path, Mixup/CutMix
with label smoothing (soft-target cross entropy), RandAugment and random erasing, per-iteration
warmup + cosine lr; bf16 autocast with ``--precision bf16``. Rank 0 writes ``checkpoint.pth``
(atomically) every epoch, ``model_<epoch>.pth`` every ``saveckp_freq`` epochs and at the end, and
``metrics.jsonl``; the validation split is evaluated after every epoch.

Loading ``--finetune CKPT`` (ours, or the reference's released encoder-only format under "model"):
decoder keys are dropped, the position embedding is interpolated when the image size differs, and
exactly the head / fc_norm keys must be left missing (the head starts from trunc_normal(2e-5)).
Anything else — another architecture, or a classifier checkpoint — is one clear error, exit 2.
"""
from __future__ import annotations

import json
import pathlib
import sys
import time

from mae.errors import CheckpointError, ConfigError, DataError, DeviceError, user_errors

DECODER_PREFIXES = ("decoder_", "mask_token")
CLASSIFIER_PREFIXES = ("head.", "fc_norm.")


def _names(keys, limit: int = 6) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_pretrained(model, path, model_name: str = "the model") -> str:
    """Load MAE encoder weights from ``path`` into the classifier ``model``; return a summary line.

    Raises CheckpointError (one sentence naming the keys) when the checkpoint is a classifier or
    does not fit the model's architecture.
    """
    import torch
    from timm.layers import trunc_normal_

    from mae import checkpoint
    from mae.pos_embed import interpolate_pos_embed

    ckpt = checkpoint.load(path)
    state = {k.removeprefix("module."): v for k, v in ckpt["model"].items()}
    head_keys = [k for k in state if k.startswith(CLASSIFIER_PREFIXES)]
    if head_keys:
        raise CheckpointError(
            f"{path} is a classifier checkpoint (it holds {_names(head_keys)}), not pretraining weights; "
            f"give --finetune an MAE pretraining checkpoint, or continue this finetuning with --resume {path}")
    target = model.state_dict()
    dropped = [k for k in state if k.startswith(DECODER_PREFIXES) or (k.startswith("norm.") and k not in target)]
    for k in dropped:
        del state[k]
    resized = False
    if "pos_embed" in state and state["pos_embed"].shape[-1] == target["pos_embed"].shape[-1]:
        resized = interpolate_pos_embed(model, state)
    expected = {k for k in target if not k.startswith(CLASSIFIER_PREFIXES)}
    missing = expected - set(state)
    unexpected = set(state) - set(target)
    wrong = {k: (tuple(state[k].shape), tuple(target[k].shape)) for k in expected & set(state)
             if tuple(state[k].shape) != tuple(target[k].shape)}
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            shown = [k for k in target if k in wrong][:3]  # model order: patch_embed first
            parts.append(f"{len(wrong)} tensors of the wrong shape: " + ", ".join(
                f"{k} {'x'.join(map(str, wrong[k][0]))} in the checkpoint vs {'x'.join(map(str, wrong[k][1]))}"
                for k in shown) + (f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""))
        if missing:
            parts.append(f"missing: {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected: {_names(unexpected)}")
        raise CheckpointError(
            f"{path} does not fit model {model_name} ({'; '.join(parts)}); "
            "choose the --model whose encoder the pretraining used (e.g. vit_digits for mae_vit_digits)")
    result = model.load_state_dict(state, strict=False)
    left = set(result.missing_keys)
    want = {k for k in target if k.startswith(CLASSIFIER_PREFIXES)}
    if left != want or result.unexpected_keys:  # cannot happen after the checks above
        raise CheckpointError(f"{path}: unexpected load result (missing {_names(left)})")
    with torch.no_grad():
        trunc_normal_(model.head.weight, std=2e-5)
        torch.nn.init.zeros_(model.head.bias)
    epoch = ckpt.get("epoch")
    return (f"loaded pretraining weights from {path}" + (f" (epoch {epoch})" if epoch is not None else "")
            + f": {len(state)} tensors, dropped {len(dropped)} decoder/norm tensors"
            + (", position embedding interpolated" if resized else "")
            + f"; new {_names(want, 4)}")


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


def run(cfg) -> dict:
    from mae import dist

    info = dist.init(cfg.device)
    try:
        return _run(cfg, info)
    finally:
        dist.cleanup(info)


def _run(cfg, info) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from mae import checkpoint, config, dist, engine_finetune, lr_decay, optim
    from mae.metrics import Tracker

    if info.device_type == "ipu":
        raise DeviceError("finetuning runs on cpu or cuda in this package; pass --device cpu, cuda or auto")
    device = torch.device(info.device)
    if cfg.mixup_mode not in ("batch", "pair", "elem"):
        raise ConfigError(f"--mixup_mode must be batch, pair or elem, got '{cfg.mixup_mode}'")
    torch.manual_seed(cfg.seed + info.rank)
    out = pathlib.Path(cfg.output_dir)
    model = build_model(cfg)
    resume_path, state = checkpoint.resolve_resume(cfg.resume, cfg.output_dir)
    if state is None and cfg.finetune:
        message = load_pretrained(model, cfg.finetune, cfg.model)
        if info.is_main:
            print(message, flush=True)
    elif state is None and info.is_main:
        print("no --finetune checkpoint: training from random initialisation", flush=True)
    train_set, val_set = build_datasets(cfg)
    if cfg.mixup > 0 or cfg.cutmix > 0:
        if cfg.batch_size % 2:
            raise ConfigError(f"mixup/cutmix need an even batch_size, got {cfg.batch_size}")
    model.to(device)
    model_without_ddp = model
    if info.distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    lr = optim.resolve_lr(cfg, info.world_size)
    groups = lr_decay.param_groups_lrd(model_without_ddp, cfg.weight_decay,
                                       model_without_ddp.no_weight_decay(), cfg.layer_decay)
    optimizer = torch.optim.AdamW(groups, lr=lr)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" and device.type == "cuda" else None
    start_epoch = 0
    if state is not None:
        try:
            model_without_ddp.load_state_dict(state["model"])
        except RuntimeError as err:
            raise CheckpointError(f"{resume_path} does not fit model {cfg.model} "
                                  f"({str(err).splitlines()[-1].strip()[:160]}); resume with the config it was "
                                  "written with") from None
        if "optimizer" in state and "epoch" in state:
            optimizer.load_state_dict(state["optimizer"])
            start_epoch = int(state["epoch"]) + 1
            if scaler is not None and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
        if info.is_main:
            print(f"resumed from {resume_path} at epoch {start_epoch}", flush=True)

    mixup_fn, criterion = mixup_and_criterion(cfg)
    sampler = dist.sampler(train_set, info, shuffle=True, seed=cfg.seed, drop_last=True)
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        pin_memory=cfg.pin_mem and device.type == "cuda", drop_last=True,
                        persistent_workers=cfg.num_workers > 0)
    if len(loader) == 0:
        raise DataError(f"{cfg.data_path}/train has {len(train_set)} images: fewer than one batch of "
                        f"{cfg.batch_size} per process; lower --batch_size")
    writer = Tracker(out, "finetune", cfg) if info.is_main else None
    log = writer.write if writer else None
    eff = optim.effective_batch(cfg, info.world_size)
    if info.is_main:
        print(f"finetune {cfg.model}: {len(train_set)} train / {len(val_set)} validation images, "
              f"{info.world_size} process(es) on {device.type}, effective batch {eff}, lr {lr:.3e} "
              f"(blr {cfg.blr:.3e}), layer decay {cfg.layer_decay}, drop path {cfg.drop_path}, "
              f"mixup {cfg.mixup} cutmix {cfg.cutmix} smoothing {cfg.smoothing}", flush=True)

    def schedule(opt, epoch):
        return optim.adjust_learning_rate(opt, epoch, lr, cfg.min_lr, cfg.warmup_epochs, cfg.epochs)

    stats, best, start = {}, 0.0, time.time()
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        epoch_start = time.time()
        train_stats = engine_finetune.train_one_epoch(
            model, criterion, loader, optimizer, epoch, device=device, schedule=schedule,
            accum_iter=cfg.gradient_accumulation_count, mixup_fn=mixup_fn, scaler=scaler,
            clip_grad=cfg.clip_grad, precision=cfg.precision, print_freq=cfg.print_freq,
            world_size=info.world_size, log=log, is_main=info.is_main)
        if info.is_main:
            keep = (epoch + 1) % cfg.saveckp_freq == 0 or epoch + 1 == cfg.epochs
            checkpoint.save_checkpoint(out, {
                "model": model_without_ddp.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "args": config.to_dict(cfg)}, keep_copy=keep)
        stats = engine_finetune.evaluate(
            model_without_ddp, val_set, batch_size=cfg.batch_size, device=device, rank=info.rank,
            world_size=info.world_size, distributed=info.distributed, precision=cfg.precision,
            num_workers=cfg.num_workers, print_freq=cfg.print_freq, is_main=info.is_main)
        best = max(best, stats["top1"])
        if info.is_main:
            for line in engine_finetune.summary_lines(stats):
                print(line, flush=True)
            print(f"Max accuracy: {best:.2f}%", flush=True)
            log({"job": "finetune", "epoch": epoch, "train_loss": train_stats.get("loss"), "lr": train_stats.get("lr"),
                 "throughput": train_stats.get("throughput"),
                 "val_top1": stats["top1"], "val_top5": stats["top5"], "val_loss": stats["loss"],
                 "val_n": stats["n"], "epoch_time": time.time() - epoch_start, "elapsed_s": time.time() - start})
    if info.is_main:
        print(f"Training time {time.time() - start:.1f}s", flush=True)
        if stats:
            (out / "finetune_summary.json").write_text(json.dumps(
                {**stats, "best_top1": best, "epochs": cfg.epochs}, indent=1) + "\n")
    if writer:
        writer.close()
    return stats


def main(argv: list[str] | None = None) -> int:
    from mae import config

    with user_errors("mae.finetune"):
        cfg = config.parse(argv, job="finetune")
        run(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
