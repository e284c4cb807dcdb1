"""A run's state is what its hosts report, on the loopback cluster: a finished detached job becomes
succeeded at the next `status`/`runs` (its launch lock given back), a `stop` that could not reach every
host records nothing it did not confirm, and a stopped job's hosts read `stopped`."""
import json
import re
import pathlib
import secrets

import pytest

from cluster_fixtures import run_cli, run_processes, tiny_jobs, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

_TOKEN = secrets.token_hex(3)
LONG = ["--generated_data", "true", "--generated_size", "480", "--epochs", "50", "--batch_size", "16",
        "--print_freq", "1", "--num_workers", "0", "--warmup_epochs", "0"]


def _run_json(runs_dir, run_id):
    return json.loads((pathlib.Path(runs_dir["MAE_LAUNCH_RUNS_DIR"]) / run_id / "run.json").read_text())


def _lock(cluster, inv) -> pathlib.Path:
    """The launch lock file of this inventory's rendezvous port on host0 (root's, on this machine)."""
    import yaml
    port = yaml.safe_load(pathlib.Path(inv).read_text())["network"]["master_port"]
    return pathlib.Path.home() / ".mae-launch" / "locks" / f"torchrun-port-{port}"


def test_a_finished_detached_run_becomes_succeeded_and_gives_back_its_lock(cluster, deployed, runs_dir, tmp_path):
    rid = f"done-{_TOKEN}"
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs())
    run_cli(["pretrain", "-i", inv, "--run-id", rid, "--detach"], env_extra=runs_dir, check=0)
    assert _lock(cluster, inv).is_file()
    exits = [h.workdir / "runs" / rid / f"pretrain.{h.name}.exit" for h in cluster.hosts]
    assert wait_for(lambda: all(p.is_file() for p in exits), 240), "the detached job did not finish"
    assert _run_json(runs_dir, rid)["jobs"][0]["state"] == "running"  # nobody has looked yet
    listed = json.loads(run_cli(["runs", "--json"], env_extra=runs_dir, check=0).stdout)
    mine = [r for r in listed if r["run"] == rid]
    assert mine and mine[0]["jobs"][0]["state"] == "succeeded" and mine[0]["jobs"][0]["ended"]
    assert _run_json(runs_dir, rid)["jobs"][0]["state"] == "succeeded"
    assert not _lock(cluster, inv).exists()
    st = json.loads(run_cli(["status", rid, "--json"], env_extra=runs_dir, check=0).stdout)
    assert st["run"] == rid and st["state"] == "succeeded"
    assert [h["state"] for h in st["hosts"]] == ["exited 0"] * 3 and all(h["last_seen"] for h in st["hosts"])


def test_stop_that_cannot_reach_every_host_is_incomplete_then_finished(cluster, deployed, runs_dir, tmp_path):
    rid = f"halfstop-{_TOKEN}"
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs(LONG))
    run_cli(["pretrain", "-i", inv, "--run-id", rid, "--detach"], env_extra=runs_dir, check=0)
    try:
        log = cluster.hosts[0].workdir / "runs" / rid / "pretrain.rank0.log"
        assert wait_for(lambda: log.is_file() and "Training Epoch" in log.read_text(), 180)
        for h in cluster.hosts[1:]:
            h.stop()
        try:
            sp = run_cli(["stop", rid], env_extra=runs_dir, timeout=120)
            assert sp.returncode == 1, sp.stdout + sp.stderr
            assert f"stop incomplete: host1, host2 did not answer. Run {rid} is not recorded as stopped" in \
                " ".join(sp.stdout.split()), sp.stdout
            assert _run_json(runs_dir, rid)["jobs"][0]["state"] == "running"
            # their ranks lose rank 0 and end by themselves (a gloo error, exit status 1): still `stopped` below
            exits = [h.workdir / "runs" / rid / f"pretrain.{h.name}.exit" for h in cluster.hosts[1:]]
            assert wait_for(lambda: all(p.is_file() for p in exits), 120), "the unreached hosts' ranks went on"
            assert {p.read_text().strip() for p in exits} != {"0"}
        finally:
            for h in cluster.hosts[1:]:
                h.start()
                h.wait_ready()
    finally:
        again = run_cli(["stop", rid], env_extra=runs_dir, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert _run_json(runs_dir, rid)["jobs"][0]["state"] == "stopped"
    assert not run_processes(rid)
    st = json.loads(run_cli(["status", rid, "--json"], env_extra=runs_dir, check=0).stdout)
    assert [h["state"] for h in st["hosts"]] == ["stopped"] * 3, st  # not `exited 143`, whatever the ranks wrote


def test_a_failed_rank_shows_its_own_error_not_torchruns_traceback(cluster, deployed, runs_dir, tmp_path):
    rid = f"rankerr-{_TOKEN}"
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs())
    p = run_cli(["pretrain", "-i", inv, "--run-id", rid, "--", "--output_dir", "/proc/no-such-dir"],
                env_extra=runs_dir, timeout=300)
    assert p.returncode == 1, p.stdout + p.stderr
    out = p.stdout
    assert "earliest failure: host host" in out and "rank failed with exit code 2" in out, out
    report = out.split("earliest failure:", 1)[1]
    assert "mae.pretrain: error: cannot create output directory /proc/no-such-dir" in report
    assert re.search(rf"mae-launch logs {rid} --host host\d --rank \d -n 200", report), report
    assert "ChildFailedError traceback folded" in out
    assert "Root Cause" not in out and "torch/distributed/run.py" not in out, out
    assert len(out.splitlines()) < 40, out  # torchrun's tracebacks alone were 66 lines
    host_log = (cluster.hosts[0].workdir / "runs" / rid / "pretrain.host0.log").read_text()
    assert "Root Cause" in host_log  # the whole log stays on the host
    whole = run_cli(["logs", rid, "--host", "host0", "-n", "200"], env_extra=runs_dir, check=0)
    assert "Root Cause" in whole.stdout
