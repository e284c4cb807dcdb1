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


@pytest.mark.parametrize("args, example", [
    (["pretrain", "--epochs", "2"], "mae-launch pretrain -- --epochs 2"),
    (["finetune", "-i", "inventories/local.yml", "--detach", "--blr=1e-3"],
     "mae-launch finetune -i inventories/local.yml --detach -- --blr=1e-3"),
])
def test_a_program_argument_without_the_double_dash_says_where_it_goes(tmp_path, args, example):
    p = cli(*args, env={"MAE_LAUNCH_RUNS_DIR": str(tmp_path)})
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    job, option = args[0], args[-2] if args[-1] == "2" else args[-1].split("=")[0]
    assert p.stderr.splitlines() == [
        f"error: mae-launch {job}: no such option {option}; arguments for the program (python -m mae.{job}) go "
        f"after `--`, e.g. {example}"]
    assert not list(tmp_path.iterdir())  # nothing started, nothing recorded


def test_a_job_without_an_inventory_says_which_it_runs_on(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MAE_LAUNCH_INVENTORY"}
    p = subprocess.run([sys.executable, "-m", "launcher", "pretrain", "--host", "nosuch"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120, env={**env, "MAE_LAUNCH_RUNS_DIR": str(tmp_path)})
    assert p.returncode == 2
    assert p.stdout.splitlines() == ["note: no --inventory given: running on inventories/local.yml (this machine); "
                                     "pass -i PATH for another"]
    q = cli("pretrain", "-i", "inventories/local.yml", "--host", "nosuch", env={"MAE_LAUNCH_RUNS_DIR": str(tmp_path)})
    assert q.returncode == 2 and q.stdout == ""
