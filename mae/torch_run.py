"""The CPU / CUDA side of each training job, after the entry built data, model and optimizer:
loader, DDP wrapping and the engine's epoch. :mod:`mae.ipu_run` is the IPU counterpart.

A runner has ``describe() -> str``, ``train(epoch, jsonl) -> stats``, ``state() -> (model,
optimizer, scaler)`` state dicts for a checkpoint, ``compile()`` (IPU only) and ``close()``.
"""
from __future__ import annotations

import os

import torch

from mae import dist, engine_finetune, engine_pretrain, optim, seeding
from mae.errors import DataError


def _ddp(model, info):
    if not info.distributed:  # wrapped after loading: DDP starts from rank 0's weights on every rank
        return model
    ids = [torch.device(info.device).index] if info.device_type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)


class PretrainRunner:
    def __init__(self, cfg, job, dataset, model, optimizer, scaler, lr: float):
        info = job.info
        self.cfg, self.job, self.core, self.optimizer, self.scaler, self.lr = cfg, job, model, optimizer, scaler, lr
        self.dataset = dataset
        self.sampler = dist.sampler(dataset, info, shuffle=True, seed=cfg.seed)
        self.loader_gen = torch.Generator()
        self.loader = torch.utils.data.DataLoader(
            dataset, sampler=self.sampler, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
            pin_memory=cfg.pin_mem and info.device_type == "cuda", drop_last=True, generator=self.loader_gen)
        accum = cfg.gradient_accumulation_count
        self.steps = (len(self.loader) // accum) * accum
        if self.steps == 0:
            raise DataError(
                f"the training set has {len(dataset)} images: too few for batch_size {cfg.batch_size} x "
                f"gradient_accumulation_count {accum} x {info.world_size} processes; lower them or add data")
        self.model = _ddp(model, info)

    def describe(self) -> str:
        cfg, info = self.cfg, self.job.info
        return (f"pretrain {cfg.model} on {info.device} x {info.world_size} process(es) ({_cpus()} CPU(s) each), "
                f"{len(self.dataset)} "
                f"images, {self.steps} steps/epoch, effective batch {optim.effective_batch(cfg, info.world_size)}, "
                f"lr {self.lr:.3e} (blr {cfg.blr:g}), precision {self.job.precision.name}, "
                f"output {self.job.output_dir}")

    def train(self, epoch: int, jsonl) -> dict:
        cfg, info = self.cfg, self.job.info
        seeding.seed_epoch(cfg.seed, epoch, info.rank)
        self.sampler.set_epoch(epoch)
        self.loader_gen.manual_seed(seeding.seed_for(cfg.seed, epoch, info.rank, seeding.LOADER))
        return engine_pretrain.train_one_epoch(self.model, self.loader, self.optimizer, self.scaler, epoch,
                                               self.steps, cfg, info, self.lr, self.job.precision, jsonl)

    def state(self):
        return self.core.state_dict(), self.optimizer.state_dict(), self.scaler.state_dict()

    def close(self) -> None:
        pass


class FinetuneRunner:
    def __init__(self, cfg, job, dataset, model, optimizer, scaler, lr: float, mixup_fn, criterion):
        info = job.info
        self.cfg, self.job, self.core, self.optimizer, self.scaler, self.lr = cfg, job, model, optimizer, scaler, lr
        self.dataset, self.mixup_fn, self.criterion = dataset, mixup_fn, criterion
        self.sampler = dist.sampler(dataset, info, shuffle=True, seed=cfg.seed, drop_last=True)
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=self.sampler, num_workers=cfg.num_workers,
            pin_memory=cfg.pin_mem and info.device_type == "cuda", drop_last=True,
            persistent_workers=cfg.num_workers > 0)
        if len(self.loader) == 0:
            raise DataError(f"{cfg.data_path}/train has {len(dataset)} images: fewer than one batch of "
                            f"{cfg.batch_size} per process; lower --batch_size")
        self.model = _ddp(model, info)

    def describe(self) -> str:
        cfg, info = self.cfg, self.job.info
        return (f"finetune {cfg.model}: {len(self.dataset)} train images, {info.world_size} process(es) on "
                f"{info.device_type}, effective batch {optim.effective_batch(cfg, info.world_size)}, lr {self.lr:.3e} "
                f"(blr {cfg.blr:.3e}), layer decay {cfg.layer_decay}, drop path {cfg.drop_path}, "
                f"mixup {cfg.mixup} cutmix {cfg.cutmix} smoothing {cfg.smoothing}, precision {self.job.precision.name}")

    def train(self, epoch: int, log) -> dict:
        cfg, info = self.cfg, self.job.info
        seeding.seed_epoch(cfg.seed, epoch, info.rank)
        self.sampler.set_epoch(epoch)

        def schedule(opt, epoch_f):
            return optim.adjust_learning_rate(opt, epoch_f, self.lr, cfg.min_lr, cfg.warmup_epochs, cfg.epochs)

        return engine_finetune.train_one_epoch(
            self.model, self.criterion, self.loader, self.optimizer, epoch, device=torch.device(info.device),
            schedule=schedule, accum_iter=cfg.gradient_accumulation_count, mixup_fn=self.mixup_fn,
            scaler=self.scaler, clip_grad=cfg.clip_grad, precision=self.job.precision, print_freq=cfg.print_freq,
            world_size=info.world_size, log=log, is_main=info.is_main)

    def evaluate(self, val_set) -> dict:
        return evaluate(self.core, val_set, self.cfg, self.job)

    def state(self):
        return self.core.state_dict(), self.optimizer.state_dict(), self.scaler.state_dict()

    def close(self) -> None:
        pass


def evaluate(model, dataset, cfg, job) -> dict:
    """Exact evaluation of ``dataset`` (each rank its index shard, sums over ranks)."""
    info = job.info
    return engine_finetune.evaluate(
        model, dataset, batch_size=cfg.batch_size, device=torch.device(info.device), rank=info.rank,
        world_size=info.world_size, distributed=info.distributed, precision=job.precision,
        num_workers=cfg.num_workers, print_freq=cfg.print_freq, is_main=info.is_main)


def _cpus() -> int:
    """The CPUs this process may run on (its affinity: what a scheduler's binding left it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1
