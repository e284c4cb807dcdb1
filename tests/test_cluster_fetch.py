"""fetch, tensorboard and clean on real 3-host runs; status/runs/check for people (narrow terminals) and
scripts (--json); failures: a host down, a fetch interrupted and resumed."""
import hashlib
import json
import os
import pathlib
import secrets
import signal
import subprocess

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from cluster_fixtures import MAE_LAUNCH, ROOT, run_cli, tiny_jobs, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RID = f"fetched-{secrets.token_hex(3)}-with-a-long-run-id"  # unique per session (stop finds runs by id)


@pytest.fixture(scope="module")
def finished_run(cluster, deployed, tmp_path_factory):
    """One finished 3-host pretraining run, with a 24 MB file in rank 0's output folder."""
    tmp = tmp_path_factory.mktemp("fetch")
    env = {"MAE_LAUNCH_RUNS_DIR": str(tmp / "runs")}
    inv = cluster.write_inventory(tmp / "inv.yml", jobs=tiny_jobs())
    run_cli(["pretrain", "-i", inv, "--run-id", RID], env_extra=env, timeout=300, check=0)
    big = cluster.hosts[0].workdir / "output" / RID / "pretrain" / "big.bin"
    big.write_bytes(os.urandom(24 << 20))
    return {"env": env, "inv": inv, "runs": tmp / "runs", "big": big, "tmp": tmp}


def _sha(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_outputs_and_logs_then_tensorboard(finished_run):
    env, runs = finished_run["env"], finished_run["runs"]
    p = run_cli(["fetch", RID], env_extra=env, timeout=300, check=0)
    got = runs / RID
    out = got / "pretrain" / "output"
    assert (out / "checkpoint.pth").is_file() and (out / "metrics.jsonl").is_file()
    assert _sha(out / "big.bin") == _sha(finished_run["big"])
    for i in range(3):  # every host's logs and scripts
        assert (got / "hosts" / f"host{i}" / f"pretrain.host{i}.log").is_file()
        assert (got / "hosts" / f"host{i}" / f"pretrain.rank{i}.log").is_file()
    assert not list(got.glob("hosts/*/*.secrets"))
    assert "fetched into" in p.stdout
    light = finished_run["tmp"] / "light"
    run_cli(["fetch", RID, "--to", light, "--no-checkpoints", "--all-hosts"], env_extra=env, timeout=300, check=0)
    assert (light / "pretrain" / "output" / "metrics.jsonl").is_file()
    assert not list(light.rglob("*.pth"))
    tb = finished_run["tmp"] / "tb"
    p = run_cli(["tensorboard", RID, "--to", tb, "--print", "--port", "6123"], env_extra=env, timeout=300, check=0)
    assert p.stdout.strip().splitlines()[-1].endswith(f"-m tensorboard.main --logdir {tb} --port 6123")
    events = list(tb.rglob("events.out.tfevents.*"))
    assert events and not list(tb.rglob("*.pth")) and not list(tb.rglob("metrics.jsonl"))
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    assert {"train/loss", "epoch/loss", "epoch/epoch_time"} <= set(acc.Tags()["scalars"])


def test_fetch_interrupted_then_resumed(finished_run):
    env = finished_run["env"]
    dest = finished_run["tmp"] / "resume"
    part = dest / "pretrain" / "output"
    proc = subprocess.Popen(MAE_LAUNCH + ["fetch", RID, "--job", "pretrain", "--to", str(dest), "--bwlimit", "1500"],
                            env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        # rsync writes the big file under a temporary name while it copies
        assert wait_for(lambda: any(p.stat().st_size > (1 << 20) for p in part.glob(".big.bin.*")), 120)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode != 0
    kept = part / "big.bin"
    assert kept.is_file() and 0 < kept.stat().st_size < (24 << 20)  # --partial kept what had arrived
    p = run_cli(["fetch", RID, "--job", "pretrain", "--to", dest], env_extra=env, timeout=300, check=0)
    assert _sha(kept) == _sha(finished_run["big"]), p.stdout


def test_fetch_with_a_host_down_names_it(cluster, finished_run):
    env = finished_run["env"]
    cluster.hosts[2].stop()
    try:
        p = run_cli(["fetch", RID, "--no-checkpoints", "--to", finished_run["tmp"] / "down"], env_extra=env,
                    timeout=300)
    finally:
        cluster.hosts[2].start()
        cluster.hosts[2].wait_ready()
    assert p.returncode == 1, p.stdout + p.stderr
    assert "fetch failed on 1 of" in p.stdout and "host2" in p.stdout.split("fetch failed on")[1]
    assert (finished_run["tmp"] / "down" / "pretrain" / "output" / "metrics.jsonl").is_file()


@pytest.mark.parametrize("columns", ["60", "80"])
def test_status_runs_check_narrow_and_json(cluster, finished_run, columns):
    env = {**finished_run["env"], "COLUMNS": columns}
    st = run_cli(["status", RID], env_extra=env, timeout=120, check=0)
    lines = st.stdout.splitlines()
    assert any(RID in line for line in lines) and "…" not in st.stdout, st.stdout
    for i in range(3):
        assert any(f"host{i}" in line for line in lines)
    assert st.stdout.count("exited 0") == 3
    rs = run_cli(["runs"], env_extra=env, check=0)
    assert any(RID in line for line in rs.stdout.splitlines()) and "…" not in rs.stdout, rs.stdout
    ck = run_cli(["check", "-i", finished_run["inv"], "--min-free-gb", "0"], env_extra=env, timeout=180)
    assert "…" not in ck.stdout and all(f"host{i}" in ck.stdout.splitlines() for i in range(3)), ck.stdout


def test_json_records(cluster, finished_run):
    env = finished_run["env"]
    st = json.loads(run_cli(["status", RID, "--json"], env_extra=env, timeout=120, check=0).stdout)
    assert st["run"] == RID and st["job"] == "pretrain"
    assert [(h["host"], h["state"], h["exit"]) for h in st["hosts"]] == [(f"host{i}", "exited 0", 0) for i in range(3)]
    rs = json.loads(run_cli(["runs", "--json"], env_extra=env, check=0).stdout)
    assert RID in [r["run"] for r in rs]
    cluster.hosts[1].stop()
    try:
        p = run_cli(["check", "-i", finished_run["inv"], "--min-free-gb", "0", "--json"], env_extra=env, timeout=180)
    finally:
        cluster.hosts[1].start()
        cluster.hosts[1].wait_ready()
    ck = json.loads(p.stdout)
    assert p.returncode == 1 and ck["ok"] is False
    assert ck["hosts"]["host1"]["ssh"]["ok"] is False and "unreachable" in ck["hosts"]["host1"]["ssh"]["text"]
    assert ck["hosts"]["host0"]["ssh"] == {"ok": True, "text": "key verified"}


def test_clean_keeps_live_runs_and_removes_finished_ones(cluster, finished_run):
    env, runs = finished_run["env"], finished_run["runs"]
    live = f"live-{secrets.token_hex(3)}"
    long_args = ["--generated_data", "true", "--generated_size", "4800", "--epochs", "50", "--batch_size", "16",
                 "--print_freq", "1", "--num_workers", "0", "--warmup_epochs", "0"]
    inv = cluster.write_inventory(finished_run["tmp"] / "long.yml", jobs=tiny_jobs(long_args))
    run_cli(["pretrain", "-i", inv, "--run-id", live, "--detach"], env_extra=env, timeout=120, check=0)
    run_dir = cluster.hosts[0].workdir / "runs" / live
    try:
        assert wait_for(lambda: "Training Epoch" in _text(run_dir / "pretrain.rank0.log"), 180)
        p = run_cli(["clean", live], env_extra=env, timeout=120)
        assert p.returncode == 1 and "still running on host0, host1, host2" in p.stdout, p.stdout + p.stderr
        assert run_dir.is_dir() and (runs / live / "run.json").is_file()
    finally:
        run_cli(["stop", live], env_extra=env, timeout=120, check=0)
    out = cluster.hosts[0].workdir / "output" / RID / "pretrain"
    cluster.hosts[2].stop()  # a host that does not answer: nothing of the run is removed
    try:
        p = run_cli(["clean", RID], env_extra=env, timeout=120)
    finally:
        cluster.hosts[2].start()
        cluster.hosts[2].wait_ready()
    assert p.returncode == 1 and "host2 did not answer" in p.stdout and (runs / RID / "run.json").is_file()
    p = run_cli(["clean", RID, live, "--outputs"], env_extra=env, timeout=120, check=2)  # no tty, no --yes
    assert "pass --yes" in p.stderr and out.is_dir()
    p = run_cli(["clean", "--older-than", "0s", "--outputs", "--yes"], env_extra=env, timeout=180, check=0)
    assert f"host0:{out}" in p.stdout and f"removed run {RID}" in p.stdout and f"removed run {live}" in p.stdout
    assert not out.exists() and not (cluster.hosts[0].workdir / "output" / RID).exists()
    for h in cluster.hosts:
        assert not (h.workdir / "runs" / RID).exists() and not (h.workdir / "runs" / live).exists()
    assert not (runs / RID).exists() and run_cli(["runs", "--json"], env_extra=env, check=0).stdout.strip() == "[]"


def _text(path):
    try:
        return path.read_text()
    except OSError:
        return ""
