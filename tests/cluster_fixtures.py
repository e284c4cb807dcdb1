"""pytest fixtures for the loopback sshd cluster (tests/cluster.py); imported by conftest.py.

- `cluster`: 3 real sshd hosts for the whole session (stopped at the end, by pid).
- `project_source`: a frozen copy of the project (what deploy sends), so a test is not disturbed
  by edits made to the working tree while it runs.
- `deployed`: the project deployed to the 3 hosts with `mae-launch deploy` (session-wide).
- `mae_launch(...)`: run the real `mae-launch` command line in a subprocess.
Each host's workdir starts with the remap build products of this checkout (as after an earlier
deploy), so `make -C remap` on the hosts is the incremental no-op it is after a first deploy.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import prereqs  # noqa: E402
from cluster import ROOT, Cluster  # noqa: E402

MAE_LAUNCH = [str(ROOT / ".venv" / "bin" / "python"), "-m", "launcher"]
# A tiny pretraining job: generated images, a few steps per epoch.
TINY = ["--generated_data", "true", "--generated_size", "96", "--epochs", "1", "--batch_size", "16",
        "--print_freq", "1", "--num_workers", "0"]


def _require_sshd():
    reason = prereqs.skip_reason()
    if reason:
        pytest.skip(reason)


def run_cli(args, env_extra=None, timeout=300, check=None, cwd=ROOT):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", **(env_extra or {})}
    p = subprocess.run(MAE_LAUNCH + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=env, cwd=cwd)
    if check is not None:
        assert p.returncode == check, f"rc={p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def popen_cli(args, env_extra=None, cwd=ROOT):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", **(env_extra or {})}
    return subprocess.Popen(MAE_LAUNCH + [str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)


def run_processes(run_id: str) -> list[int]:
    """Pids of every process (on any loopback host) whose environment names this run."""
    needle = f"MAE_LAUNCH_RUN_ID={run_id}".encode()
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                env = (d / "environ").read_bytes().split(b"\0")
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if needle in env and stat.rsplit(")", 1)[1].split()[0] != "Z":
                pids.append(int(d.name))
    return pids


def wait_for(predicate, timeout: float, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    _require_sshd()
    c = Cluster(tmp_path_factory.mktemp("cluster"), 3).up()
    try:
        yield c
    finally:
        c.down()


@pytest.fixture(scope="session")
def project_source(tmp_path_factory):
    """A frozen copy of the project as deploy sends it, plus the remap build of this checkout."""
    _require_sshd()
    return prepare_source(tmp_path_factory.mktemp("source") / "project")


def prepare_source(src: pathlib.Path) -> pathlib.Path:
    """Copy the project into `src` as deploy sends it, and build this checkout's remap op."""
    from launcher import deploy
    src.mkdir(parents=True, exist_ok=True)
    subprocess.run(["rsync", "-a", *deploy.filter_args(), f"{ROOT}/", f"{src}/"], check=True)
    subprocess.run(["make", "-C", str(ROOT / "remap"), f"PYTHON={ROOT / '.venv' / 'bin' / 'python'}"],
                   check=True, capture_output=True)
    return src


def seed_remap_build(workdir: pathlib.Path) -> None:
    """Give a host's workdir the remap build products of this checkout (mtimes kept)."""
    (workdir / "remap").mkdir(parents=True, exist_ok=True)
    (workdir / ".mae-launch-workdir").touch()  # deploy's marker: this workdir is mae-launch's
    if (ROOT / "remap" / "build").is_dir():
        subprocess.run(["cp", "-a", str(ROOT / "remap" / "build"), str(workdir / "remap")], check=True)
    for so in (ROOT / "remap").glob("*.so"):
        subprocess.run(["cp", "-a", str(so), str(workdir / "remap")], check=True)


@pytest.fixture(scope="session")
def deployed(cluster, project_source):
    for h in cluster.hosts:
        seed_remap_build(h.workdir)
    inv = cluster.write_inventory(jobs=tiny_jobs())
    started = time.monotonic()
    p = run_cli(["deploy", "-i", inv, "--source", project_source], timeout=600)
    return {"proc": p, "seconds": time.monotonic() - started, "inventory": inv}


def tiny_jobs(pretrain_args=TINY) -> dict:
    return {"pretrain": {"config": "digits_pretrain", "nproc_per_node": 1, "args": list(pretrain_args)}}


@pytest.fixture
def runs_dir(tmp_path):
    d = tmp_path / "runs"
    d.mkdir()
    return {"MAE_LAUNCH_RUNS_DIR": str(d)}
