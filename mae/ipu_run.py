"""The IPU side of each job, after the entry built data, model and optimizer (and resumed): wrap
the model for the IPUs, build the host loader, and run the epochs of :mod:`mae.engine_ipu`.
Imported only for device ipu; the same runner interface as :mod:`mae.torch_run`.
"""
from __future__ import annotations

from mae import engine_ipu, ipu, ipu_comm, ipu_masking, ipu_mixup, optim, seeding
from mae.errors import DeviceError


def _scales(optimizer) -> list[float]:
    return [g.get("lr_scale", 1.0) for g in optimizer.param_groups]


class _Runner:
    """Shared parts: poptorch optimizer (state carried), the wrapped model, checkpoints, compile."""

    def __init__(self, cfg, job, model, optimizer, lr: float, wrap):
        self.cfg, self.job, self.model, self.optimizer, self.lr = cfg, job, model, optimizer, lr
        self.scales = _scales(optimizer)
        self.popt = ipu.to_poptorch_optimizer(optimizer, cfg, model)  # Adam moments and step carried
        self.training = wrap(model, self.popt, cfg)
        self.reduce = ipu_comm.instance_sum(cfg)

    def _check_steps(self, dataset) -> None:
        if len(self.loader) == 0:
            raise DeviceError(f"the training set has {len(dataset)} images: too few for one IPU step of "
                              f"{optim.effective_batch(self.cfg)} images; add data or lower the batch keys")

    def compile(self) -> None:
        """Compile (filling executable_cache_path) without running a step."""
        self.training.compile(*self.example())

    def state(self):
        self.training.copyWeightsToHost()
        model_state = {k: v.float() for k, v in self.model.state_dict().items()}
        return model_state, ipu.optimizer_state(self.popt, self.optimizer, self.model), None

    def close(self) -> None:
        """Give the IPUs back; never masks the error that ended the job (nothing compiled yet, ...)."""
        try:
            if self.training.isAttachedToDevice():
                self.training.detachFromDevice()
        except Exception:  # noqa: BLE001 - cleanup only
            pass

    def _describe(self, job_name: str, n: int) -> str:
        cfg, info = self.cfg, self.job.info
        return (f"{job_name} {cfg.model} on IPU: {cfg.replica} replica(s) x {cfg.ipus_per_replica} IPU(s), "
                f"{info.world_size} instance(s), {n} images, {len(self.loader)} steps/epoch, effective batch "
                f"{optim.effective_batch(cfg, info.world_size)}, lr {self.lr:.3e}, precision {self.job.precision.name}, "
                f"output {self.job.output_dir}")


class PretrainRunner(_Runner):
    def __init__(self, cfg, job, dataset, model, optimizer, lr: float):
        super().__init__(cfg, job, model, optimizer, lr, ipu.wrap_for_training)
        self.dataset = dataset
        # uint8 samples (mae.pretrain); each batch normalised, its target and masking matrices built in
        # the loader's workers, as the reference builds them in its dataset (mae.ipu_masking)
        collate = ipu_masking.MaskingCollate(model, cfg.mask_ratio, job.precision.half)
        self.loader = ipu.data_loader(self.training.options, dataset, cfg, shuffle=True, collate_fn=collate)
        self._check_steps(dataset)

    def describe(self) -> str:
        return self._describe("pretrain", len(self.dataset))

    def example(self):
        return next(iter(self.loader))

    def train(self, epoch: int, jsonl) -> dict:
        seeding.seed_epoch(self.cfg.seed, epoch, self.job.info.rank)
        return engine_ipu.pretrain_one_epoch(
            self.training, self.loader, self.popt, self.scales, epoch, self.cfg, self.job.info, self.lr, jsonl,
            self.reduce)


class FinetuneRunner(_Runner):
    def __init__(self, cfg, job, dataset, model, optimizer, lr: float, mixup_fn, factory):
        super().__init__(cfg, job, model, optimizer, lr, ipu.wrap_classifier)
        self.dataset, self.factory = dataset, factory  # factory(cfg): a fresh classifier for validation
        collate = ipu_mixup.HostCollate(mixup_fn, cfg.nb_classes, cfg.smoothing, job.precision.half)
        self.loader = ipu.data_loader(self.training.options, dataset, cfg, shuffle=True, collate_fn=collate,
                                      worker_init_fn=ipu_mixup.worker_init)
        self._check_steps(dataset)

    def describe(self) -> str:
        return self._describe("finetune", len(self.dataset))

    def example(self):
        return next(iter(self.loader))

    def compile(self) -> None:
        """Compile the training model and the validation inference model (filling the cache with both):
        finetuning reaches the inference model at the end of its first epoch. The training model gives
        the IPUs up for it (the job ends after compiling)."""
        super().compile()
        self.training.detachFromDevice()
        evaluate(self.factory(self.cfg), self.dataset, self.cfg, self.job, compile_only=True)

    def train(self, epoch: int, log) -> dict:
        seeding.seed_epoch(self.cfg.seed, epoch, self.job.info.rank)
        return engine_ipu.finetune_one_epoch(self.training, self.loader, self.popt, self.scales, epoch, self.cfg,
                                             self.job.info, self.lr, log, self.reduce)

    def evaluate(self, val_set) -> dict:
        """Validation after an epoch: the weights go to the host and into a fresh classifier compiled
        for inference; the training model gives the IPUs up meanwhile and takes them back after."""
        self.training.copyWeightsToHost()
        fresh = self.factory(self.cfg)
        fresh.load_state_dict({k: v.float() for k, v in self.model.state_dict().items()})
        self.training.detachFromDevice()
        try:
            return evaluate(fresh, val_set, self.cfg, self.job)
        finally:
            self.training.attachToDevice()


def evaluate(model, dataset, cfg, job, compile_only: bool = False) -> dict:
    """Exact validation on the IPUs: each instance its shard padded to whole device batches."""
    inference = ipu.wrap_inference(model, cfg)
    opts = inference.options
    per_call = int(cfg.batch_size) * int(opts.replication_factor) * int(cfg.device_iterations)
    shard = ipu_mixup.PaddedShard(dataset, job.info.rank, job.info.world_size, per_call)
    loader = ipu.data_loader(opts, shard, cfg, shuffle=False, drop_last=True, auto_distributed_partitioning=False)
    try:
        if compile_only:
            imgs, _, _ = next(iter(loader))
            inference.compile(imgs)
            return {}
        return engine_ipu.evaluate(inference, loader, job.info, ipu_comm.instance_sum(cfg), cfg.print_freq)
    finally:
        if inference.isAttachedToDevice():
            inference.detachFromDevice()
