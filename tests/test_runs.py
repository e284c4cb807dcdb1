"""Run records: built from a plan, state methods, one serialisation, clear errors on a bad file."""
import json
import subprocess
import sys
import threading

import pytest

from launcher.errors import UserError
from launcher.inventory import load_inventory
from launcher.plan import plan_job
from launcher.runs import RunRecord, RunStore, from_json, to_json

INVENTORIES = __import__("pathlib").Path(__file__).resolve().parents[1] / "inventories"


@pytest.fixture
def gpu_plan():
    inv = load_inventory(INVENTORIES / "gpu-cluster.yml")
    return inv, plan_job(inv, "pretrain", "r1")


def test_record_from_plan_round_trips_and_changes_state_by_methods(tmp_path, gpu_plan):
    inv, plan = gpu_plan
    store = RunStore(tmp_path)
    run = store.create(RunRecord.new("r1", inv, ["mae-launch", "pretrain"]), inv.snapshot())
    job = run.add_job(plan)
    assert set(job.hosts) == {hp.host.name for hp in plan.hosts} and job.state == "starting"
    first = plan.hosts[0].host.name
    assert job.hosts[first].rank_logs == plan.hosts[0].rank_logs
    job.started_on({hp.host.name: 100 + i for i, hp in enumerate(plan.hosts)})
    assert job.state == "running" and job.live
    store.save(run)
    back = store.load("r1")
    assert back == run and to_json(back) == to_json(run)
    assert back.host(first) == plan.hosts[0].host        # connection settings survive the round trip
    back.job().failed("host x: exited with exit code 3")
    assert back.job().state == "failed" and back.job().ended and not back.job().live
    back.stopped()                                       # a finished job stays as it ended
    assert back.job().state == "failed"
    back.record_validation({"top1": 99.0})
    back.resume()
    store.save(back)
    again = store.load()
    assert again.validation == {"top1": 99.0} and len(again.resumed) == 1 and again.summary() == "pretrain: failed"


def test_partial_start_is_failed_to_start(tmp_path, gpu_plan):
    inv, plan = gpu_plan
    run = RunRecord.new("r2", inv, [])
    job = run.add_job(plan)
    job.started_on({plan.hosts[0].host.name: 7})
    assert job.state == "failed to start"
    run.stopped()
    assert job.state == "failed to start"


@pytest.mark.parametrize("text", ["", "{", "[]", '{"format": 1}', '{"format": 2, "id": "x"}'])
def test_corrupt_record_is_one_sentence(tmp_path, text):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "run.json").write_text(text)
    with pytest.raises(UserError, match="the run record cannot be read"):
        RunStore(tmp_path).load("bad")
    assert RunStore(tmp_path).list_ids() in ([], ["bad"])


def test_cli_on_a_truncated_record_prints_one_line_exit_2(tmp_path, gpu_plan):
    inv, plan = gpu_plan
    store = RunStore(tmp_path)
    run = store.create(RunRecord.new("r3", inv, []), inv.snapshot())
    run.add_job(plan)
    store.save(run)
    path = tmp_path / "r3" / "run.json"
    path.write_text(path.read_text()[:200])
    p = subprocess.run([sys.executable, "-m", "launcher", "status", "r3"], capture_output=True, text=True,
                       env={**__import__("os").environ, "MAE_LAUNCH_RUNS_DIR": str(tmp_path)}, timeout=120)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1 and "r3/run.json" in p.stderr


def test_concurrent_saves_never_leave_a_broken_file(tmp_path, gpu_plan):
    inv, plan = gpu_plan
    store = RunStore(tmp_path)
    run = store.create(RunRecord.new("r4", inv, []), inv.snapshot())
    run.add_job(plan)
    errors = []

    def writer():
        try:
            for _ in range(50):
                store.save(run)
        except Exception as exc:  # a clash on a shared temporary name would land here
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert from_json(json.loads((tmp_path / "r4" / "run.json").read_text())) == run
    assert sorted(p.name for p in (tmp_path / "r4").iterdir()) == ["inventory.json", "run.json"]
