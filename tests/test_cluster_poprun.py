"""poprun jobs on the loopback cluster, without IPUs: tests/bin/poprun hands poprun's command line to
OpenMPI's mpirun, which starts the instances on every host over the hosts' real sshd daemons.

What this proves: the run's environment reaches every instance (-x in templates/poprun.j2), so a
run's processes are known by its MAE_LAUNCH_* names on every host, and stop and fail-fast leave
nothing behind on any host.
"""
import os
import pathlib
import secrets
import signal
import time

import pytest

import prereqs
from cluster_fixtures import popen_cli, run_cli, run_processes, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[1]
_TOKEN = secrets.token_hex(3)
# long enough to act on: each instance trains on generated images until stopped
ENDLESS = ["--generated_data", "true", "--generated_size", "96", "--epochs", "1000", "--batch_size", "16",
           "--print_freq", "1", "--num_workers", "0", "--saveckp_freq", "1000"]


@pytest.fixture
def poprun_inventory(cluster, deployed, tmp_path):
    reason = prereqs.skip_reason(mpi=True)
    if reason:
        pytest.skip(reason)
    config = tmp_path / "ssh_config"  # how mpirun's ssh reaches each loopback host
    config.write_text("".join(f"Host {h.address}\n  Port {h.port}\n" for h in cluster.hosts)
                      + f"Host *\n  User root\n  IdentityFile {cluster.client_key}\n  UserKnownHostsFile "
                        f"{cluster.known_hosts}\n  StrictHostKeyChecking yes\n  BatchMode yes\n")
    path = f"{ROOT / 'tests' / 'bin'}:{cluster.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
    n = len(cluster.hosts)
    return cluster.write_inventory(
        tmp_path / "poprun.yml", launcher="poprun", cluster={"vipu_server_host": "127.0.0.1"},
        partitions={"loop": n}, network={"interface": "lo"},
        env={"OMP_NUM_THREADS": 1, "PATH": path, "MAE_TEST_SSH_CONFIG": str(config)},
        jobs={"pretrain": {"config": "digits_pretrain", "partition": "loop", "replicas": n, "ipus_per_replica": 1,
                           "instances": n, "args": ENDLESS}})


def _instances(run_id: str) -> dict:
    """pid -> the address of the sshd that started it, for every MPI instance of the run."""
    out = {}
    for pid in run_processes(run_id):
        try:
            env = dict(v.split("=", 1) for v in pathlib.Path(f"/proc/{pid}/environ").read_text(errors="replace")
                       .split("\0") if "=" in v)
            cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if "OMPI_COMM_WORLD_RANK" in env and b"mae.pretrain" in cmd:
            out[pid] = env.get("SSH_CONNECTION", "").split(" ")[2:3]
    return out


def _wait_instances(cluster, run_id: str) -> dict:
    every = {h.address for h in cluster.hosts}
    found = wait_for(lambda: (lambda i: i if {a[0] for a in i.values() if a} == every else None)(_instances(run_id)),
                     180, 0.5)
    assert found, f"instances of {run_id} with the run's names on every host: {_instances(run_id)}"
    return found


def test_stop_leaves_nothing_on_any_host_of_a_poprun_job(cluster, poprun_inventory, runs_dir):
    run_id = f"pop-stop-{_TOKEN}"
    p = run_cli(["pretrain", "-i", poprun_inventory, "--run-id", run_id, "--detach"], env_extra=runs_dir, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    try:
        found = _wait_instances(cluster, run_id)
        assert len(found) == len(cluster.hosts)
        started = time.monotonic()
        s = run_cli(["stop", run_id], env_extra=runs_dir, timeout=120)
        gone = wait_for(lambda: not run_processes(run_id), 30, 0.1)
        print(f"poprun stop: rc {s.returncode}, nothing left after {time.monotonic() - started:.1f} s")
    finally:
        run_cli(["stop", run_id], env_extra=runs_dir, timeout=120)
    assert s.returncode == 0, s.stdout + s.stderr
    assert gone, f"left: {run_processes(run_id)}"


def test_a_killed_instance_tears_down_every_host(cluster, poprun_inventory, runs_dir):
    run_id = f"pop-kill-{_TOKEN}"
    proc = popen_cli(["pretrain", "-i", poprun_inventory, "--run-id", run_id, "--poll", "0.3"], env_extra=runs_dir)
    try:
        found = _wait_instances(cluster, run_id)
        victim = next(pid for pid, addr in found.items() if addr == [cluster.hosts[1].address])
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        out, _ = proc.communicate(timeout=120)
        gone = wait_for(lambda: not run_processes(run_id), 30, 0.05)
        elapsed = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
        run_cli(["stop", run_id], env_extra=runs_dir, timeout=120)
    print(f"poprun: instance on host1 SIGKILLed -> launcher rc {proc.returncode}, nothing left after {elapsed:.1f} s")
    assert proc.returncode != 0, out
    assert gone, f"left: {run_processes(run_id)}"
