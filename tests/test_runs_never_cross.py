"""Runs never cross: `stop` signals only processes carrying the run's own random token and belonging to
the login user, never another checkout's or another user's process with the same run id."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launcher.inventory import load_inventory
from launcher.plan import plan_job
from launcher.runs import RunRecord, RunStore

ROOT = Path(__file__).resolve().parents[1]


def _sleeper(run_id, token, user=None):
    env = dict(os.environ, MAE_LAUNCH_RUN_ID=run_id, MAE_LAUNCH_HOST="localhost", MAE_LAUNCH_TOKEN=token)
    argv = ["sleep", "120"]
    if user is not None:
        argv = ["/usr/bin/setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.Popen(argv, env=env, start_new_session=True)


def _alive(p) -> bool:
    return p.poll() is None


@pytest.mark.skipif(os.geteuid() != 0, reason="starting another user's process needs root")
def test_stop_signals_only_this_runs_processes(tmp_path):
    inv = load_inventory(ROOT / "inventories" / "local.yml")
    store = RunStore(tmp_path)
    run = store.create(RunRecord.new("same-id", inv, ["test"]), inv.snapshot())
    run.add_job(plan_job(inv, "pretrain", run.id))
    store.save(run)
    ours = _sleeper(run.id, run.token)
    other_checkout = _sleeper(run.id, "0" * 32)          # same run id, another launcher's token
    other_user = _sleeper(run.id, run.token, user=65534)  # same run id and token, another user
    try:
        time.sleep(0.3)
        p = subprocess.run([sys.executable, "-m", "launcher", "stop", run.id, "--grace", "0.5"], capture_output=True,
                           text=True, cwd=ROOT, timeout=120, env=dict(os.environ, MAE_LAUNCH_RUNS_DIR=str(tmp_path)))
        assert p.returncode == 0, p.stdout + p.stderr
        ours.wait(10)
        time.sleep(0.5)
        assert not _alive(ours)
        assert _alive(other_checkout) and _alive(other_user)
    finally:
        for proc in (ours, other_checkout, other_user):
            if _alive(proc):
                proc.kill()
            proc.wait()


def test_a_run_record_carries_a_random_token():
    inv = load_inventory(ROOT / "inventories" / "local.yml")
    a, b = RunRecord.new("r", inv, []), RunRecord.new("r", inv, [])
    assert len(a.token) == 32 and a.token != b.token


# generated images: the launch reads no data path, so the launch lock is what decides, with or without
# data/digits (made by make data) in this checkout
GENERATED = ["--", "--generated_data", "true", "--generated_size", "96", "--num_workers", "0"]


def _cli(args, home, runs, timeout=180):
    env = dict(os.environ, HOME=str(home), MAE_LAUNCH_RUNS_DIR=str(runs), OMP_NUM_THREADS="1", COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env=env)


def test_a_second_launch_on_a_held_rendezvous_port_is_refused_and_a_stale_lock_taken_over(tmp_path):
    home, runs = tmp_path / "home", tmp_path / "runs"
    (home / ".mae-launch" / "locks").mkdir(parents=True)
    inv = load_inventory(ROOT / "inventories" / "local.yml")
    lock = home / ".mae-launch" / "locks" / f"torchrun-port-{inv.network.master_port}"
    lock.write_text("run=holder-run\nsince=2026-01-01T00:00:00Z\ntoken=" + "a" * 32 + "\n")
    holder = _sleeper("holder-run", "a" * 32)  # the holder's run is alive
    try:
        p = _cli(["pretrain", "--run-id", "second", "--detach", *GENERATED], home, runs)
        assert p.returncode == 2, p.stdout + p.stderr
        assert p.stderr.splitlines() == [
            f"error: localhost: rendezvous port {inv.network.master_port} is in use by run holder-run (started "
            "2026-01-01T00:00:00Z); stop it first (mae-launch stop holder-run) or choose another network.master_port"]
        assert not (runs / "second").exists()  # a refused launch records nothing
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and taken over, with a note
    p = _cli(["pretrain", "--run-id", "third", "--detach", "--poll", "0.1", *GENERATED], home, runs)
    try:
        assert "note: took over the launch lock of rendezvous port" in p.stdout and "from run holder-run" in p.stdout, \
            p.stdout + p.stderr
        assert "run=third\n" in lock.read_text()
    finally:
        _cli(["stop", "third"], home, runs)
