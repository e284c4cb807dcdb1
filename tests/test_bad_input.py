"""Bad input and a bad local set-up: one `error:` line, exit status 2, never a traceback."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, env={**os.environ, **(env or {})})


def test_deploy_without_local_rsync_names_the_package(tmp_path):
    p = cli("deploy", "-i", "inventories/local.yml", env={"PATH": str(tmp_path)})
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.splitlines() == ["error: rsync is not installed on this machine; install it "
                                     "(Debian/Ubuntu: apt-get install rsync)"]


def _record(runs_dir, run_id, inventory="inventories/local.yml"):
    from launcher.inventory import load_inventory
    from launcher.runs import RunRecord, RunStore
    inv = load_inventory(ROOT / inventory)
    RunStore(runs_dir).create(RunRecord.new(run_id, inv, ["test"]), inv.snapshot())


@pytest.mark.parametrize("args, words", [
    (["stop", "r1", "--grace", "nan"], "error: mae-launch stop: Invalid value for '--grace': 'nan' is not a finite number of seconds"),
    (["stop", "r1", "--grace", "-1"], "error: mae-launch stop: Invalid value for '--grace': -1.0 is not in the range 0<=x<=3600."),
    (["pretrain", "--poll", "-1"], "error: mae-launch pretrain: Invalid value for '--poll': -1.0 is not in the range 0.05<=x<=60."),
    (["pretrain", "--poll", "inf"], "error: mae-launch pretrain: Invalid value for '--poll': 'inf' is not a finite number of seconds"),
    (["status", "../r1"], "error: run id '../r1' is not usable"),
    (["stop", "a/b"], "error: run id 'a/b' is not usable"),
    (["pretrain", "--run-id", "r1"], "error: run r1 already exists under "),
])
def test_bad_input_is_one_error_line(tmp_path, args, words):
    _record(tmp_path, "r1")
    p = cli(*args, env={"MAE_LAUNCH_RUNS_DIR": str(tmp_path)})
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.splitlines()) == 1 and p.stderr.startswith(words), p.stderr


def test_a_truncated_run_record_is_one_error_line(tmp_path):
    _record(tmp_path, "r2")
    record = tmp_path / "r2" / "run.json"
    record.write_text(record.read_text()[:40])
    p = cli("status", "r2", env={"MAE_LAUNCH_RUNS_DIR": str(tmp_path)})
    assert p.returncode == 2 and len(p.stderr.splitlines()) == 1, p.stderr
    assert p.stderr.startswith(f"error: {record}: the run record cannot be read")


def test_resume_uses_the_recorded_inventory_and_refuses_another(tmp_path):
    _record(tmp_path, "r3", "inventories/gpu-cluster.yml")
    other = ROOT / "inventories" / "local.yml"
    p = cli("pretrain", "--resume", "r3", "-i", str(other), env={"MAE_LAUNCH_RUNS_DIR": str(tmp_path)})
    recorded = (ROOT / "inventories" / "gpu-cluster.yml").resolve()
    assert p.returncode == 2 and p.stderr.splitlines() == [
        f"error: run r3 was started with inventory {recorded}, not {other}; resume it with that one "
        f"(leave out --inventory), or pass --other-inventory to use {other}"]
    # without -i the recorded inventory is used: its identity_file is checked (absent here) before anything runs
    p = cli("pretrain", "--resume", "r3", env={"MAE_LAUNCH_RUNS_DIR": str(tmp_path), "HOME": str(tmp_path)})
    assert p.returncode == 2 and f"{recorded}:" in p.stderr and "identity_file" in p.stderr, p.stderr
