"""Launcher backends, one module each: torchrun, poprun, single (one process, no launcher) and slurm
(one sbatch script on the submit host; srun starts torchrun on every node of the allocation).

`select` picks the backend of a job. Adding a backend means adding its module, its template, and
one entry here.
"""
from __future__ import annotations

from launcher.backends.poprun import PoprunBackend
from launcher.backends.single import SingleBackend
from launcher.backends.slurm import SlurmBackend
from launcher.backends.torchrun import TorchrunBackend

BACKENDS = {b.name: b for b in (TorchrunBackend(), PoprunBackend(), SingleBackend(), SlurmBackend())}


def select(inventory, job, n_hosts: int):
    """The backend that runs `job` of `inventory` on `n_hosts` hosts."""
    if inventory.is_slurm:
        return BACKENDS["slurm"]
    if inventory.launcher == "torchrun":
        return BACKENDS["torchrun"]
    if job.instances == 1 and n_hosts == 1:
        return BACKENDS["single"]
    return BACKENDS["poprun"]
