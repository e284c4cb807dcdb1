"""Faults on the real loopback cluster, with real processes and signals: a host whose sshd hangs
(SIGSTOP) for a while (a blip: the run survives) or for good (the run is stopped after host_timeout),
and a hung host met by status and stop. Each prints what the launcher said and how long it took."""
import pathlib
import re
import secrets
import time

import pytest

from cluster_fixtures import popen_cli, run_cli, run_processes, tiny_jobs, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

_TOKEN = secrets.token_hex(3)
# long enough to act on mid-way (about a minute): 40 epochs of 10 steps
LONG = ["--generated_data", "true", "--generated_size", "480", "--epochs", "40", "--batch_size", "16",
        "--print_freq", "1", "--num_workers", "0", "--saveckp_freq", "10", "--warmup_epochs", "0"]


# the blip run must outlast a 12 s outage and then finish by itself: half as long
BLIP = [v if k != "--epochs" else "20" for k, v in zip([""] + LONG, LONG)]


def _inventory(cluster, tmp_path, args=LONG, **ssh):
    data = cluster.inventory_data()
    return cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs(args), ssh=dict(data["ssh"], **ssh))


def _running(cluster, run_id):
    """Training has begun (rank 0, on the controller, prints the steps of every rank's all-reduce)."""
    log = cluster.hosts[0].workdir / "runs" / run_id / "pretrain.rank0.log"
    return wait_for(lambda: log.exists() and "Epoch" in log.read_text(errors="replace"), 240, 0.2)


@pytest.mark.faults
def test_a_blip_shorter_than_host_timeout_never_stops_the_run(cluster, deployed, runs_dir, tmp_path):
    run_id = f"blip-{_TOKEN}"
    hung = cluster.hosts[2]
    proc = popen_cli(["pretrain", "-i", _inventory(cluster, tmp_path, BLIP), "--run-id", run_id, "--poll", "0.3"],
                     env_extra=runs_dir)
    try:
        assert _running(cluster, run_id), "the run never got going"
        hung.freeze()
        time.sleep(12)  # longer than a poll's timeout and connect_timeout (5 s), far below host_timeout (60 s)
        hung.thaw()
        out, _ = proc.communicate(timeout=400)
    finally:
        hung.thaw()
        if proc.poll() is None:
            proc.kill()
        run_cli(["stop", run_id], env_extra=runs_dir, timeout=120)
    warning = re.search(r"warning: host host2 is not answering \(.*?\); retrying, the run is stopped if it stays "
                        r"unreachable for 60 s", " ".join(out.split()))
    print(f"blip: {warning.group(0) if warning else None!r}; rc {proc.returncode}")
    assert proc.returncode == 0, out
    assert warning, out
    assert out.count("warning: host host2 is not answering") == 1  # one line per outage, not per poll
    assert "host host2 answers again" in out


@pytest.mark.faults
def test_a_host_unreachable_past_host_timeout_stops_the_run(cluster, deployed, runs_dir, tmp_path):
    run_id = f"lost-{_TOKEN}"
    hung = cluster.hosts[2]
    proc = popen_cli(["pretrain", "-i", _inventory(cluster, tmp_path, host_timeout=4), "--run-id", run_id,
                      "--poll", "0.3"], env_extra=runs_dir)
    try:
        assert _running(cluster, run_id), "the run never got going"
        hung.freeze()
        frozen_at = time.monotonic()
        out, _ = proc.communicate(timeout=300)
        took = time.monotonic() - frozen_at
    finally:
        hung.thaw()
        if proc.poll() is None:
            proc.kill()
    s = run_cli(["stop", run_id], env_extra=runs_dir, timeout=120)  # the host is back: nothing may be left
    gone = wait_for(lambda: not run_processes(run_id), 30, 0.1)
    line = next((ln for ln in out.splitlines() if "host2" in ln and "stopped answering" in ln), None)
    print(f"host lost: {line!r}; launcher ended {took:.1f} s after the freeze")
    assert proc.returncode == 1, out
    assert "host host2: host stopped answering for" in " ".join(out.split()), out
    assert took < 4 + 30, took  # host_timeout + a poll's timeout + the teardown's bounded stop
    assert s.returncode == 0 and gone, s.stdout + s.stderr


@pytest.mark.faults
def test_status_and_stop_name_a_hung_host_within_connect_timeout(cluster, deployed, runs_dir, tmp_path):
    run_id = f"hung-{_TOKEN}"
    hung = cluster.hosts[1]
    p = run_cli(["pretrain", "-i", _inventory(cluster, tmp_path, connect_timeout=3), "--run-id", run_id,
                 "--detach"], env_extra=runs_dir, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    try:
        assert _running(cluster, run_id)
        hung.freeze()
        for command in (["status", run_id], ["stop", run_id]):
            started = time.monotonic()
            r = run_cli(command, env_extra=runs_dir, timeout=120)
            took = time.monotonic() - started
            out = " ".join((r.stdout + r.stderr).split())
            print(f"{command[0]} with host1 hung: rc {r.returncode} in {took:.1f} s")
            assert "host1" in out and "Traceback" not in out, out  # one sentence; paramiko's own log stays quiet
            assert took < 3 + 20, took  # connect_timeout + the command's start-up on a loaded machine
        assert r.returncode == 1, out  # stop could not reach host1: a failed host
    finally:
        hung.thaw()
        run_cli(["stop", run_id], env_extra=runs_dir, timeout=120)
    assert wait_for(lambda: not run_processes(run_id), 30, 0.1)


def test_a_secret_lands_in_no_file_on_any_host_and_run_files_are_private(cluster, deployed, runs_dir, tmp_path):
    run_id = f"secret-{_TOKEN}"
    secret = f"s3cret-{secrets.token_hex(8)}"
    data = cluster.inventory_data()
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs(),
                                  env={**data["env"], "WANDB_API_KEY": {"value": secret, "secret": True}})
    p = run_cli(["pretrain", "-i", inv, "--run-id", run_id], env_extra=runs_dir, timeout=400)
    assert p.returncode == 0, p.stdout + p.stderr
    assert secret not in p.stdout + p.stderr
    leaks, loose = [], []
    for root in [cluster.root, pathlib.Path(runs_dir["MAE_LAUNCH_RUNS_DIR"])]:  # every host, and the local record
        for f in root.rglob("*"):
            if f.is_file() and not f.is_symlink():
                if secret.encode() in f.read_bytes():
                    leaks.append(str(f))
    for h in cluster.hosts:
        for f in (h.workdir / "runs" / run_id).iterdir():
            if f.stat().st_mode & 0o077:
                loose.append(f"{f} {oct(f.stat().st_mode)}")
        assert not list((h.workdir / "runs" / run_id).glob("*.secrets")), "the secrets file is removed"
    print(f"secret: in no file ({len(leaks)} leaks); run files private ({len(loose)} readable by others)")
    assert leaks == [] and loose == []
