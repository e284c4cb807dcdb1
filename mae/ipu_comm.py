"""Sums over poprun instances (loss, throughput, validation counts).

Under poprun each instance is an MPI process; the sums go through mpi4py (or Horovod when that is
what the SDK environment has). One instance, or ``aggregate_instances: false``: the local values.

    reduce = instance_sum(cfg)      # list[float] -> list[float], summed over every instance
"""
from __future__ import annotations

from mae.errors import DeviceError


def popdist_place():
    """``(instance index, number of instances)`` under poprun (popdist initialised), else None."""
    try:
        import popdist
        import popdist.poptorch  # noqa: F401
    except ImportError:
        return None
    if not popdist.isPopdistEnvSet():
        return None
    popdist.init()
    return int(popdist.getInstanceIndex()), int(popdist.getNumInstances())


def _instances() -> int:
    try:
        import popdist
    except ImportError:
        return 1
    return int(popdist.getNumInstances()) if popdist.isPopdistEnvSet() else 1


def _local(values):
    return [float(v) for v in values]


def instance_sum(cfg, instances: int | None = None):
    """A function summing a list of floats over every instance (the identity for one instance)."""
    instances = _instances() if instances is None else instances
    if instances <= 1 or not getattr(cfg, "aggregate_instances", True):
        return _local
    try:
        from mpi4py import MPI
    except ImportError:
        MPI = None
    if MPI is not None:
        import numpy as np

        def mpi_sum(values):  # numpy arrays: MPI.SUM adds them element by element
            return [float(v) for v in MPI.COMM_WORLD.allreduce(np.asarray(_local(values)), op=MPI.SUM)]
        return mpi_sum
    try:
        import horovod.torch as hvd
    except ImportError:
        raise DeviceError(f"{instances} poprun instances need mpi4py (or Horovod) in the SDK environment to sum "
                          "loss, throughput and accuracy; pip install mpi4py, or set --aggregate_instances false"
                          ) from None
    return _horovod_sum(hvd)


def _horovod_sum(hvd):
    import torch

    if not hvd.is_initialized():
        hvd.init()

    def hvd_sum(values):
        t = torch.tensor(_local(values), dtype=torch.float64)
        return [float(v) for v in hvd.allreduce(t, op=hvd.Sum)]
    return hvd_sum
