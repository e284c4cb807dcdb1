"""`mae-launch inventory new --slurm` on the real Slurm test cluster (tests/slurm.py): the partition
is read with scontrol/sinfo of this machine (the submit host) and the inventory passes `check`."""
import socket

import pytest
import yaml

from cluster_fixtures import ROOT, run_cli

pytestmark = pytest.mark.slurm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slurm_inventory_passes_check(slurm, tmp_path):
    env = {"SLURM_CONF": str(slurm.conf), "MAE_LAUNCH_RUNS_DIR": str(tmp_path / "runs")}
    out, work = tmp_path / "hpc.yml", tmp_path / "work"
    work.mkdir()
    p = run_cli(["inventory", "new", "hpc", "--slurm", "-o", out, "--venv", ROOT / ".venv", "--workdir", work,
                 "--master-port", _free_port()], env_extra=env, timeout=60, check=0)
    assert p.stdout.splitlines()[-1] == f"next: mae-launch check -i {out}"
    text = out.read_text()
    data = yaml.safe_load(text)
    assert data["scheduler"] == "slurm" and data["slurm"]["partition"] == "debug"   # Default=YES of the two
    assert "gpus_per_node" not in data["slurm"] and "(2 nodes)" in text             # 2 nodes, no gres
    p = run_cli(["check", "-i", out], env_extra=env, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    p = run_cli(["inventory", "new", "hpc", "--slurm", "--partition", "small", "-o", tmp_path / "small.yml"],
                env_extra=env, timeout=60, check=0)
    assert yaml.safe_load((tmp_path / "small.yml").read_text())["slurm"]["partition"] == "small"
