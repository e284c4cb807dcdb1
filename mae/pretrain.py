"""``python -m mae.pretrain --config NAME [--data_path DIR | --generated_data] [--output_dir DIR]
[--resume [CKPT]] [--<any config key> VALUE ...]``

Masked Autoencoder pretraining. The named config (mae/configs.yml) supplies the defaults and flags
override them (``--help`` lists every key). Bad input is reported in one line with exit status 2.

This entry owns the setup of every device: config checks, data, model, optimizer, resume, and the
device dispatch (once, in :func:`mae.job.start`). One epoch is :func:`mae.engine_pretrain.train_one_epoch`
on CPU/CUDA and :func:`mae.engine_ipu.pretrain_one_epoch` on IPU (built by :mod:`mae.ipu_run`).
``checkpoint.pth`` is written after every epoch, ``model_<epoch>.pth`` every ``saveckp_freq``
epochs and at the end; then each hook ``hook(ctx: CheckpointContext)`` runs on rank 0.
metrics.jsonl gets the step records of the engine and ``{"type": "epoch", "epoch", "loss", "lr",
"throughput", "epoch_time", "images"}`` per epoch.
"""
from __future__ import annotations

import dataclasses
import pathlib
import sys
from typing import Any, Callable

from mae import config
from mae.errors import ConfigError, user_errors, warn


@dataclasses.dataclass
class CheckpointContext:
    """What a checkpoint hook gets (rank 0 only, after model_<epoch>.pth is written)."""

    model: Any                      # unwrapped host model, in train mode; hooks restore modes they change
    epoch: int                      # the epoch just completed (0-based)
    output_dir: pathlib.Path
    cfg: Any                        # the parsed config
    device: str
    dataset: Any                    # the training dataset
    metrics_path: pathlib.Path      # metrics.jsonl
    checkpoint_path: pathlib.Path


Hook = Callable[[CheckpointContext], None]


def check_cfg(cfg) -> None:
    """Values that no config may hold (ConfigError naming the key)."""
    for key in ("batch_size", "gradient_accumulation_count", "epochs", "input_size", "print_freq",
                "saveckp_freq", "generated_size", "device_iterations"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key} must be at least 1, got {getattr(cfg, key)}")
    if cfg.num_workers < 0 or cfg.warmup_epochs < 0:
        raise ConfigError("num_workers and warmup_epochs must not be negative")
    if not 0.0 <= cfg.mask_ratio < 1.0:
        raise ConfigError(f"mask_ratio must be in [0, 1), got {cfg.mask_ratio}")


def default_hooks() -> list:
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
            cfg.model, img_size=cfg.input_size, norm_pix_loss=cfg.norm_pix_loss, gelu_type=cfg.gelu_type)
    except KeyError as err:
        raise ConfigError(str(err.args[0]) + " (key 'model')") from None
    except (AssertionError, ValueError) as err:
        raise ConfigError(f"model {cfg.model} cannot be built with input_size {cfg.input_size}: {err}") from None


def run(cfg, hooks: list | None = None) -> dict:
    """Pretrain according to ``cfg``; returns the last epoch's stats (empty when nothing ran)."""
    from mae import data, job

    check_cfg(cfg)
    if not cfg.generated_data and cfg.data_path:
        data.preflight(cfg.data_path, "train")  # bad data paths fail before the model is built
    j = job.start(cfg)
    stats = _train(cfg, j, default_hooks() if hooks is None else hooks)
    job.finish(j)
    return stats


def _setup(cfg, j):
    """Data, model, optimizer and resume, the same on every device; then the device's runner."""
    from mae import checkpoint, data, optim, precision

    # uint8 samples: CPU / CUDA normalise the batch on the device (the engine); the IPU loop's loader
    # normalises each batch in its workers (fast_transforms.collate_normalized)
    dataset = data.build_pretrain_dataset(cfg, normalize=False)
    if not cfg.generated_data:
        from mae import fast_transforms

        j.say(f"input pipeline: {fast_transforms.decoding()}")
    model = build_model(cfg)
    if not j.ipu:
        model.to(j.info.device)
    lr = optim.resolve_lr(cfg, j.info.world_size)
    optimizer = optim.build_adamw(model, cfg, lr, betas=(0.9, 0.95))
    scaler = precision.make_scaler(j.info.device_type, j.precision)
    start = checkpoint.resume(cfg.resume, j.output_dir, model, optimizer, scaler, cfg.model, log=j.say) or 0
    _agree(start, j)
    if j.ipu:
        from mae import ipu_run

        return dataset, model, start, ipu_run.PretrainRunner(cfg, j, dataset, model, optimizer, lr)
    from mae import torch_run

    return dataset, model, start, torch_run.PretrainRunner(cfg, j, dataset, model, optimizer, scaler, lr)


def _agree(start_epoch: int, j) -> None:
    from mae import checkpoint, dist

    low, high = dist.min_max(start_epoch, j.info)
    if low != high:
        raise checkpoint.CheckpointError(
            f"ranks disagree on the checkpoint to resume from (epochs {int(low) - 1} to {int(high) - 1}): "
            f"{j.output_dir} must be the same shared folder on every host, or pass --resume FILE present everywhere")


def _train(cfg, j, hooks) -> dict:
    from mae import dist, job, metrics

    dataset, model, start, runner = _setup(cfg, j)
    if job.begin(cfg, j, runner):
        return {}
    if start >= cfg.epochs:
        j.say(f"nothing to do: {cfg.epochs} epochs already done")
        dist.barrier(j.info)
        return {}
    jsonl = metrics.Tracker(j.output_dir, "pretrain", cfg) if j.info.is_main else None
    stats: dict = {}
    try:
        for epoch in range(start, cfg.epochs):
            stats = runner.train(epoch, jsonl)
            if j.info.is_main:
                jsonl.write({"type": "epoch", "epoch": epoch, **stats})
                _save(cfg, j, runner, model, epoch, dataset, jsonl.path, hooks)
    finally:
        if jsonl is not None:
            jsonl.close()
        runner.close()
    dist.barrier(j.info)  # every rank leaves together (rank 0 may still be saving)
    return stats


def _save(cfg, j, runner, model, epoch, dataset, metrics_path, hooks) -> None:
    from mae import checkpoint

    keep = (epoch + 1) % cfg.saveckp_freq == 0 or epoch + 1 == cfg.epochs
    model_state, optim_state, scaler_state = runner.state()
    state = {"model": model_state, "optimizer": optim_state, "epoch": epoch, "scaler": scaler_state,
             "args": config.to_dict(cfg)}
    path = checkpoint.save_checkpoint(j.output_dir, state, keep_copy=keep)
    del state
    if keep:
        ctx = CheckpointContext(model, epoch, j.output_dir, cfg, j.info.device, dataset, metrics_path, path)
        for hook in hooks:
            _call_hook(hook, ctx)


def _call_hook(hook, ctx) -> None:
    """A failing hook is reported in one line and never stops training."""
    try:
        hook(ctx)
    except Exception as err:  # noqa: BLE001 - a picture must not end a long run
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        warn(f"checkpoint hook {getattr(hook, '__name__', hook)} failed at epoch {ctx.epoch}: {first[:200]}")


def main(argv: list[str] | None = None) -> int:
    with user_errors("mae.pretrain"):
        run(config.parse(argv, job="pretrain"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
