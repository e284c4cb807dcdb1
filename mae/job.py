"""What every job (pretrain, finetune, validate) does the same way before and after its loop.

    job = start(cfg)          the SDK check for device ipu (one line, exit 2, before anything
                              heavy), the process group, the precision and the initial seed
    job.say(text)             print on the main process only
    make_output(job, path)    create the output folder (main process) or one-line error
    finish(job)               destroy the process group after a normal end

``Job.info`` is :class:`mae.dist.DistInfo`; ``Job.precision`` is :class:`mae.precision.Precision`.
"""
from __future__ import annotations

import dataclasses
import pathlib

from mae import dist, precision, seeding
from mae.errors import CheckpointError


@dataclasses.dataclass
class Job:
    info: dist.DistInfo
    precision: precision.Precision
    output_dir: pathlib.Path

    @property
    def ipu(self) -> bool:
        return self.info.device_type == "ipu"

    def say(self, text: str) -> None:
        if self.info.is_main:
            print(text, flush=True)


def start(cfg) -> Job:
    """Device dispatch happens here, once: on device ipu the SDK must import (else one line, exit 2)."""
    if cfg.device == "ipu":
        from mae import ipu  # the only place a job imports the IPU glue

        ipu.require_poptorch()
    prec = precision.resolve(cfg.precision, dist.resolve_device(cfg.device), bool(getattr(cfg, "half", False)))
    info = dist.init(cfg.device)
    seeding.seed_init(cfg.seed)
    return Job(info, prec, pathlib.Path(cfg.output_dir or "."))


def make_output(job: Job) -> None:
    if not job.info.is_main:
        return
    try:
        job.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointError(f"cannot create output directory {job.output_dir}: {err.strerror}") from None


def begin(cfg, job: Job, runner) -> bool:
    """Create the output folder and say what runs; with --compile_only on IPU, compile and say where
    the executables went. True when that was all there is to do."""
    make_output(job)
    job.say(runner.describe())
    if not (cfg.compile_only and job.ipu):
        return False
    runner.compile()
    job.say(f"compiled; executable cache {cfg.executable_cache_path or '(none: pass --executable_cache_path)'}")
    return True


def finish(job: Job) -> None:
    """Only after a normal end: on errors the process exit tears the group down."""
    dist.cleanup(job.info)
