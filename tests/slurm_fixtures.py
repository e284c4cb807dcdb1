"""pytest fixture for the real Slurm cluster (tests/slurm.py); imported by conftest.py.

- `slurm`: munged + slurmctld + 2 slurmd nodes (1 CPU each) for the whole session, stopped at the
  end (jobs cancelled, daemons stopped by pid, leftover job steps by the cluster's token).
"""
from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from slurm import SlurmCluster, available  # noqa: E402


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    why = available()
    if why:
        pytest.skip(f"real Slurm: {why}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), n=2, cpus=2).up()
    try:
        yield cluster
    finally:
        cluster.down()
