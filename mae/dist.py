"""Process group and device: torchrun (gloo on CPU, nccl on CUDA), poprun (popdist), or one process.

API::

    info = dist.init(device="auto")   # DistInfo(rank, world_size, local_rank, device, distributed)
    dist.resolve_device("auto")       # "cuda" when available, else "cpu"; "ipu" stays "ipu"
    dist.sampler(dataset, info, shuffle=True, seed=0)  # DistributedSampler (also for 1 process)
    dist.all_reduce_mean(value, info) # float averaged over ranks (plain value in one process)
    dist.min_max(value, info)         # (min, max) over ranks
    dist.barrier(info); dist.cleanup(info)

The place of a process in a job is learnt only from the environment: torchrun's RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; under poprun (device ipu) popdist's.
"""
from __future__ import annotations

import dataclasses
import datetime
import os

from mae.errors import DeviceError


@dataclasses.dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"          # "cpu", "cuda:<n>" or "ipu"
    distributed: bool = False    # a torch.distributed process group is initialised
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def device_type(self) -> str:
        return self.device.split(":")[0]


def resolve_device(name: str) -> str:
    """cpu | cuda | ipu | auto → device type; DeviceError when cuda is asked for and absent."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("device cuda was asked for but no CUDA GPU is visible; use --device cpu or auto")
    if name not in ("cpu", "cuda", "ipu"):
        raise DeviceError(f"unknown device '{name}'; use cpu, cuda, ipu or auto")
    return name


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise DeviceError(f"environment variable {name}={os.environ[name]!r} is not an integer") from None


def init(device: str = "auto", timeout_s: int = 1800) -> DistInfo:
    """Initialise distribution from the environment and pick this process's device."""
    import torch

    kind = resolve_device(device)
    if kind == "ipu":
        return _init_popdist()
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    dev = "cpu"
    if kind == "cuda":
        index = local % max(torch.cuda.device_count(), 1)
        torch.cuda.set_device(index)
        dev = f"cuda:{index}"
    info = DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)
    if world > 1:
        import torch.distributed as td

        backend = "nccl" if kind == "cuda" else "gloo"
        kwargs = {"device_id": torch.device(dev)} if kind == "cuda" else {}
        td.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
        info.distributed, info.backend = True, backend
    return info


def _init_popdist() -> DistInfo:
    """Under poprun: one instance per process, each driving several replicas (popdist tells which)."""
    from mae import ipu_comm  # the SDK's popdist is imported only in the IPU modules

    place = ipu_comm.popdist_place()
    if place is None:
        return DistInfo(device="ipu")
    rank, world = place
    return DistInfo(rank=rank, world_size=world, device="ipu", local_rank=rank)


def sampler(dataset, info: DistInfo, shuffle: bool = True, seed: int = 0, drop_last: bool = True):
    """A DistributedSampler for any world size: call ``set_epoch(e)`` each epoch for a seeded order."""
    from torch.utils.data import DistributedSampler

    return DistributedSampler(
        dataset, num_replicas=info.world_size, rank=info.rank, shuffle=shuffle, seed=seed, drop_last=drop_last
    )


def all_reduce_mean(value: float, info: DistInfo) -> float:
    """Mean of ``value`` over the torch.distributed ranks (``value`` itself in one process)."""
    if not info.distributed:
        return float(value)
    import torch
    import torch.distributed as td

    t = torch.tensor([float(value)], dtype=torch.float64, device=info.device if info.backend == "nccl" else "cpu")
    td.all_reduce(t)
    return float(t.item()) / info.world_size


def min_max(value: float, info: DistInfo) -> tuple[float, float]:
    """(min, max) of ``value`` over the ranks, to check that every rank agrees."""
    if not info.distributed:
        return float(value), float(value)
    import torch
    import torch.distributed as td

    device = info.device if info.backend == "nccl" else "cpu"
    t = torch.tensor([float(value), -float(value)], dtype=torch.float64, device=device)
    td.all_reduce(t, op=td.ReduceOp.MAX)
    return -float(t[1].item()), float(t[0].item())


def barrier(info: DistInfo) -> None:
    if info.distributed:
        import torch.distributed as td

        td.barrier()


def cleanup(info: DistInfo, timeout_s: float = 60.0) -> None:
    """Destroy the process group, bounded by ``timeout_s`` (destroying can hang on some stacks).

    Call it only when every rank finished normally (after a barrier): after an error some ranks
    may still be inside a collective, and the process exit tears the group down anyway.
    """
    if not info.distributed:
        return
    import threading

    import torch.distributed as td

    info.distributed = False
    if not td.is_initialized():
        return
    worker = threading.Thread(target=td.destroy_process_group, name="destroy_process_group", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        from mae.errors import warn

        warn(f"destroying the process group took over {timeout_s:.0f} s; exiting without waiting for it")
