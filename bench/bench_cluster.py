"""Benchmark of mae-launch on the loopback sshd cluster (tests/cluster.py): real sshd, rsync, torchrun.

Measures, with the real `mae-launch` command line:
  - deploy wall time to 1, 2, 4 and 8 hosts (fresh workdirs; rsync of the project + `make -C remap`,
    the hosts starting with this checkout's remap objects as after an earlier deploy — pass --cold to
    also time one from-scratch build of the op on 1 host);
  - no-change redeploy time (8 hosts);
  - launch latency: command -> first training step on all ranks (3 hosts x 1 rank; rank 0 prints the
    step after the all-reduce of every rank's gradients);
  - fail-fast latency: SIGKILL of rank 1 -> every process of the run gone on every host, and -> the
    command has exited with the failure reported, on 3 hosts and on 8 (--failfast-hosts).

Usage: .venv/bin/python bench/bench_cluster.py [--hosts 1,2,4,8] [--failfast-hosts 3,8] [--cold] [--skip-run]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from cluster import Cluster  # noqa: E402
from cluster_fixtures import prepare_source, run_processes, seed_remap_build, wait_for  # noqa: E402

STEP = r"Training Epoch: \[0\]\[\s*{}/"  # the meter line of step N of epoch 0 (rank 0)
CLI = [str(ROOT / ".venv" / "bin" / "python"), "-m", "launcher"]
LONG = ["--generated_data", "true", "--generated_size", "4800", "--epochs", "1", "--batch_size", "16",
        "--print_freq", "1", "--num_workers", "0", "--warmup_epochs", "0"]


def cli(args, env=None, check=True):
    p = subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, cwd=ROOT,
                       env=dict(os.environ, OMP_NUM_THREADS="1", COLUMNS="200", **(env or {})))
    if check and p.returncode != 0:
        raise SystemExit(f"{args[0]} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", default="1,2,4,8")
    ap.add_argument("--cold", action="store_true", help="also time a from-scratch remap build on 1 host")
    ap.add_argument("--skip-run", action="store_true", help="only the deploy figures")
    ap.add_argument("--failfast-hosts", default="3,8", help="host counts of the fail-fast measurement")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the daemons on a plain kill
    sizes = [int(x) for x in args.hosts.split(",")]
    failfast_sizes = [int(x) for x in args.failfast_hosts.split(",")]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    cluster = Cluster(tmp / "cluster", max(sizes + failfast_sizes + [3])).up()
    runs_env = {"MAE_LAUNCH_RUNS_DIR": str(tmp / "runs")}
    try:
        src = prepare_source(tmp / "source")
        figures = _deploy_figures(cluster, tmp, src, sizes, args.cold)
        if not args.skip_run:
            figures += _run_figures(cluster, tmp, runs_env, failfast_sizes)
    finally:
        cluster.down()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmae-launch on the loopback cluster ({os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}):")
    for name, secs in figures:
        print(f"  {name:<75} {secs:7.2f} s")
    return 0


def _deploy_figures(cluster, tmp, src, sizes, cold: bool) -> list:
    """Deploy to each host count (fresh workdirs holding the remap build), a no-change redeploy, and
    with `cold` a from-scratch build on 1 host."""
    figures, all_hosts = [], cluster.inventory_data()["hosts"]
    for n in sizes:
        for h in cluster.hosts[:n]:
            shutil.rmtree(h.workdir, ignore_errors=True)
            h.workdir.mkdir(parents=True)
            seed_remap_build(h.workdir)
        inv = cluster.write_inventory(tmp / f"inv{n}.yml", hosts=all_hosts[:n])
        secs, _ = timed(lambda: cli(["deploy", "-i", inv, "--source", src]))
        figures.append((f"deploy to {n} host(s) (sync + make -C remap, objects present)", secs))
        print(f"deploy {n} hosts: {secs:.2f} s", flush=True)
    n = max(sizes)
    secs, p = timed(lambda: cli(["deploy", "-i", tmp / f"inv{n}.yml", "--source", src]))
    assert p.stdout.count("unchanged") >= n, p.stdout
    figures.append((f"no-change redeploy, {n} host(s)", secs))
    print(f"no-change redeploy {n} hosts: {secs:.2f} s", flush=True)
    if cold:
        h = cluster.hosts[0]
        shutil.rmtree(h.workdir)
        h.workdir.mkdir(parents=True)
        secs, _ = timed(lambda: cli(["deploy", "-i", tmp / "inv1.yml", "--source", src]))
        figures.append(("deploy to 1 host with a from-scratch remap build", secs))
    return figures


def _run_figures(cluster, tmp, runs_env, failfast_sizes) -> list:
    """Launch latency on 3 hosts, then fail-fast on each host count."""
    all_hosts = cluster.inventory_data()["hosts"]
    jobs = {"pretrain": {"config": "digits_pretrain", "nproc_per_node": 1, "args": LONG}}
    inv3 = cluster.write_inventory(tmp / "run3.yml", hosts=all_hosts[:3], jobs=jobs)
    token = os.urandom(3).hex()  # unique run ids: stop finds a run's processes by id and host
    latency_id = f"latency-{token}"
    rank0 = cluster.hosts[0].workdir / "runs" / latency_id / "pretrain.rank0.log"
    t0 = time.perf_counter()
    proc = subprocess.Popen(CLI + ["pretrain", "-i", str(inv3), "--run-id", latency_id], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            env=dict(os.environ, OMP_NUM_THREADS="1", **runs_env))
    wait_for(lambda: re.search(STEP.format(0), _read(rank0)), 600, 0.02)
    launch = time.perf_counter() - t0
    figures = [("launch latency: command -> first training step, 3 hosts", launch)]
    print(f"launch latency: {launch:.2f} s", flush=True)
    cli(["stop", latency_id], env=runs_env)
    proc.wait(60)
    for n in failfast_sizes:
        figures += _failfast(cluster, tmp, n, all_hosts, jobs, runs_env, token)
    return figures


def _failfast(cluster, tmp, n, all_hosts, jobs, runs_env, token) -> list:
    """SIGKILL of rank 1 (host1) of an n-host run -> every process gone; -> the command has exited."""
    for h in cluster.hosts[:n]:  # every host runs the code: deploy to the ones not deployed yet
        if not (h.workdir / "launcher").is_dir():
            seed_remap_build(h.workdir)
    inv = cluster.write_inventory(tmp / f"failfast{n}.yml", hosts=all_hosts[:n], jobs=jobs)
    cli(["deploy", "-i", inv, "--source", tmp / "source"])
    run_id = f"failfast{n}-{token}"
    rank0 = cluster.hosts[0].workdir / "runs" / run_id / "pretrain.rank0.log"
    proc = subprocess.Popen(CLI + ["pretrain", "-i", str(inv), "--run-id", run_id, "--poll", "0.5"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1", **runs_env))
    wait_for(lambda: re.search(STEP.format(2), _read(rank0)), 900, 0.05)
    pid = _rank_pid(run_id, "host1")
    t0 = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    others = [p for p in run_processes(run_id) if p != pid]
    wait_for(lambda: not any(_alive(p) for p in others), 120, 0.02)
    gone = time.perf_counter() - t0
    out, _ = proc.communicate(timeout=120)
    exited = time.perf_counter() - t0
    assert "earliest failure: host host1 rank 1" in out, out
    line = next((ln.strip() for ln in out.splitlines() if "earliest failure" in ln), "")
    print(f"fail-fast {n} hosts: gone {gone:.2f} s, exited {exited:.2f} s; printed: {line}", flush=True)
    return [(f"fail-fast: rank killed -> all processes of the run gone, {n} hosts", gone),
            (f"fail-fast: rank killed -> command exited with the failure reported, {n} hosts", exited)]


def _alive(pid: int) -> bool:
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read(path: pathlib.Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _rank_pid(run_id: str, host: str) -> int:
    for pid in run_processes(run_id):
        try:
            env = pathlib.Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if f"MAE_LAUNCH_HOST={host}".encode() in env and b"mae.pretrain" in cmd:
            return pid
    raise SystemExit(f"no training process of {run_id} on {host}")


if __name__ == "__main__":
    sys.exit(main())
