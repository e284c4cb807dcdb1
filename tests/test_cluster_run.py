"""Real multi-host torchrun runs started over SSH on the loopback cluster: launch, logs, status,
stop, fail-fast after a killed rank, Ctrl-C, resume."""
import json
import os
import re
import secrets
import signal
import time

import pytest
import torch

from cluster_fixtures import popen_cli, run_cli, run_processes, tiny_jobs, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# Run ids unique to this test session: `stop` finds a run's processes by run id and host name, so two
# sessions running these tests on one machine at once must not share ids.
_TOKEN = secrets.token_hex(3)
RID = {name: f"{name}-{_TOKEN}" for name in ("tiny3", "watched", "killed", "ctrlc")}

# A run long enough to act on mid-way: 2 epochs of 10 steps, a checkpoint after every epoch.
LONG = ["--generated_data", "true", "--generated_size", "480", "--epochs", "2", "--batch_size", "16",
        "--print_freq", "1", "--num_workers", "0", "--saveckp_freq", "1", "--warmup_epochs", "0"]


def _output(cluster, host_index, run_id, job="pretrain"):
    return cluster.hosts[host_index].workdir / "output" / run_id / job


def _run_dir(cluster, host_index, run_id):
    return cluster.hosts[host_index].workdir / "runs" / run_id


def test_three_host_pretrain_completes_and_writes_checkpoint(cluster, deployed, runs_dir, tmp_path):
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs())
    p = run_cli(["pretrain", "-i", inv, "--run-id", RID["tiny3"]], env_extra=runs_dir, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "pretrain finished on every host" in p.stdout
    ckpt = torch.load(_output(cluster, 0, RID["tiny3"]) / "checkpoint.pth", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 0 and "model" in ckpt
    for i in range(3):  # one log per rank, every host exited 0
        rd = _run_dir(cluster, i, RID["tiny3"])
        assert (rd / f"pretrain.host{i}.exit").read_text().strip() == "0"
        assert (rd / f"pretrain.rank{i}.log").is_file()  # ranks other than 0 may print nothing
        assert (rd / f"pretrain.host{i}.sh").is_file()
    assert "3 process(es)" in (_run_dir(cluster, 0, RID["tiny3"]) / "pretrain.rank0.log").read_text()
    # merged log lines carry host and rank
    assert re.search(r"^host0 r0  \| Training Epoch", p.stdout, re.M), p.stdout
    # the local record: snapshot, git revision, scripts, pgids
    rec = pathlib_runs(runs_dir) / RID["tiny3"]
    run = json.loads((rec / "run.json").read_text())
    assert run["git"] and run["jobs"][0]["state"] == "succeeded"
    assert all(isinstance(h["pgid"], int) for h in run["jobs"][0]["hosts"].values())
    assert json.loads((rec / "inventory.json").read_text())["name"] == "loopback"
    assert (rec / "pretrain.host2.sh").is_file()
    assert not run_processes(RID["tiny3"])


def pathlib_runs(runs_dir):
    import pathlib
    return pathlib.Path(runs_dir["MAE_LAUNCH_RUNS_DIR"])


def test_logs_status_stop_on_a_real_run(cluster, deployed, runs_dir, tmp_path):
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs(LONG + ["--epochs", "50"]))
    p = run_cli(["pretrain", "-i", inv, "--run-id", RID["watched"], "--detach"], env_extra=runs_dir, check=0)
    assert "started" in p.stdout
    try:
        assert wait_for(lambda: "Training Epoch" in _read(_run_dir(cluster, 0, RID["watched"]) / "pretrain.rank0.log"), 180)
        st = run_cli(["status", RID["watched"]], env_extra=runs_dir, check=0)
        assert st.stdout.count("running") >= 3, st.stdout
        lg = run_cli(["logs", RID["watched"], "-n", "5"], env_extra=runs_dir, check=0)
        for i in range(3):
            assert f"host{i}" in lg.stdout
        assert "host0 r0  | " in lg.stdout
        one = run_cli(["logs", RID["watched"], "--host", "host1"], env_extra=runs_dir, check=0)
        assert "host1" in one.stdout and "host0 r0" not in one.stdout
        assert run_processes(RID["watched"])
        cluster.hosts[2].stop()  # a host that stops answering is unreachable (not lost); its job goes on
        try:
            st = run_cli(["status", RID["watched"]], env_extra=runs_dir, timeout=120)
        finally:
            cluster.hosts[2].start()
            cluster.hosts[2].wait_ready()
        assert st.returncode == 1 and re.search(r"unreachable \(last seen 20\d\d-", st.stdout), st.stdout
        assert "lost" not in st.stdout and st.stdout.count("running") >= 2
        back = run_cli(["status", RID["watched"], "--json"], env_extra=runs_dir, check=0)  # answers again
        assert [h["state"] for h in json.loads(back.stdout)["hosts"]] == ["running"] * 3
        bad = run_cli(["logs", RID["watched"], "--host", "host9"], env_extra=runs_dir, check=2)
        assert bad.stderr.startswith(f"error: run {RID['watched']} (pretrain) has no host host9; its hosts are ")
        rank = run_cli(["logs", RID["watched"], "--rank", "0", "-n", "3"], env_extra=runs_dir, check=0)
        assert "host0 r0  | " in rank.stdout and "host1" not in rank.stdout and "host0     |" not in rank.stdout
    finally:
        sp = run_cli(["stop", RID["watched"]], env_extra=runs_dir, timeout=120)
    assert sp.returncode == 0, sp.stdout + sp.stderr
    assert sp.stdout.count("nothing left") == 3
    assert not run_processes(RID["watched"])
    st = run_cli(["status", RID["watched"]], env_extra=runs_dir, check=0)
    assert "running" not in st.stdout.split("last log line")[-1]
    assert f"run {RID['watched']}: pretrain (stopped)" in st.stdout and st.stdout.count("│ stopped ") == 3, st.stdout
    runs = run_cli(["runs"], env_extra=runs_dir, check=0)
    assert RID["watched"] in runs.stdout


def _read(path):
    try:
        return path.read_text()
    except OSError:
        return ""


def _rank_pid(run_id, host, rank):
    """The pid of the training process of `rank` on `host` (found by its environment)."""
    for pid in run_processes(run_id):
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if f"MAE_LAUNCH_HOST={host}".encode() in env and f"RANK={rank}".encode() in env and b"mae.pretrain" in cmd:
            return pid
    return None


@pytest.mark.faults
def test_killed_rank_tears_down_every_host_then_resume(cluster, deployed, runs_dir, tmp_path):
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs(LONG))
    proc = popen_cli(["pretrain", "-i", inv, "--run-id", RID["killed"], "--poll", "0.3"], env_extra=runs_dir)
    try:
        ckpt = _output(cluster, 0, RID["killed"]) / "checkpoint.pth"
        assert wait_for(ckpt.exists, 240, 0.1), "no checkpoint after the first epoch"
        pid = wait_for(lambda: _rank_pid(RID["killed"], "host1", 1), 30)
        assert pid
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        out, _ = proc.communicate(timeout=120)
        gone = wait_for(lambda: not run_processes(RID["killed"]), 30, 0.05)
        elapsed = time.monotonic() - killed_at
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert gone, f"left: {run_processes('killed')}"
    assert "earliest failure: host host1 rank 1" in out, out
    assert "exit code -9" in out, out
    assert "stopped the run on every host" in out
    print(f"kill -> nothing left on any host: {elapsed:.1f} s")
    for i in (0, 2):  # the other hosts were stopped (exit status of a signal, or marked stopped)
        exit_file = _run_dir(cluster, i, RID["killed"]) / f"pretrain.host{i}.exit"
        assert _read(exit_file).strip() != "0"
        assert exit_file.exists() or (exit_file.parent / (exit_file.name + ".stopped")).exists()
    # --resume continues from the last checkpoint on every host
    done_epoch = torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"]
    assert done_epoch == 0
    p = run_cli(["pretrain", "-i", inv, "--resume", RID["killed"]], env_extra=runs_dir, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "resumed from" in p.stdout and f"(epoch {done_epoch} done)" in p.stdout, p.stdout
    for i in (1, 2):  # the other hosts resumed too (each got the controller's checkpoint)
        assert "resumed from" in _read(_run_dir(cluster, i, RID["killed"]) / f"pretrain.rank{i}.log") or \
            (_output(cluster, i, RID["killed"]) / "checkpoint.pth").is_file()
    assert torch.load(ckpt, map_location="cpu", weights_only=False)["epoch"] == 1
    assert not run_processes(RID["killed"])


def test_ctrl_c_tears_down_every_host(cluster, deployed, runs_dir, tmp_path):
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs(LONG + ["--epochs", "50"]))
    proc = popen_cli(["pretrain", "-i", inv, "--run-id", RID["ctrlc"], "--poll", "0.3"], env_extra=runs_dir)
    try:
        assert wait_for(lambda: all("Training Epoch" in _read(_run_dir(cluster, 0, RID["ctrlc"]) / "pretrain.rank0.log")
                                    for _ in [0]), 240)
        assert len({p for p in run_processes(RID["ctrlc"])}) >= 3
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "interrupted" in out and "stopped the run on every host" in out
    assert wait_for(lambda: not run_processes(RID["ctrlc"]), 10, 0.05), run_processes(RID["ctrlc"])
