"""Shell completion through click's own protocol, as bash/zsh/fish run it: the real `mae-launch`
entry point with `_MAE_LAUNCH_COMPLETE=bash_complete COMP_WORDS=... COMP_CWORD=...` completes run ids
from the run store (newest first), job names, host names of an inventory and inventory names."""
import os
import pathlib
import subprocess
import sys

import pytest

from launcher.inventory import load_inventory
from launcher.plan import plan_job
from launcher.runs import RunRecord, RunStore

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENTRY = pathlib.Path(sys.executable).parent / "mae-launch"


def complete(words: str, runs_dir, cwd=ROOT) -> list:
    """The (type, value) pairs bash would get for the last word of `words`."""
    parts = words.split(" ")
    env = {**os.environ, "_MAE_LAUNCH_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(parts) - 1), "MAE_LAUNCH_RUNS_DIR": str(runs_dir)}
    p = subprocess.run([str(ENTRY)], env=env, capture_output=True, text=True, timeout=60, cwd=cwd)
    assert p.returncode == 0, p.stderr
    return [tuple(line.split(",", 1)) for line in p.stdout.splitlines()]


@pytest.fixture
def runs(tmp_path):
    store = RunStore(tmp_path / "runs")
    inv = load_inventory(ROOT / "inventories" / "local.yml")
    for run_id in ("20261201-1200-aaaa", "20261202-0900-bbbb"):
        store.create(RunRecord.new(run_id, inv, ["mae-launch", "pretrain"]), inv.snapshot())
    gpu = load_inventory(ROOT / "inventories" / "gpu-cluster.yml")   # a run on gpu01, gpu02
    run = store.create(RunRecord.new("20261203-0800-cccc", gpu, ["mae-launch", "pretrain"]), gpu.snapshot())
    run.add_job(plan_job(gpu, "pretrain", run.id))
    store.save(run)
    return tmp_path / "runs"


def test_run_ids_newest_first(runs):
    assert complete("mae-launch status ", runs) == [("plain", "20261203-0800-cccc"), ("plain", "20261202-0900-bbbb"),
                                                        ("plain", "20261201-1200-aaaa")]
    assert complete("mae-launch logs 20261201", runs) == [("plain", "20261201-1200-aaaa")]
    assert complete("mae-launch clean 20261201-1200-aaaa 20261202", runs) == [("plain", "20261202-0900-bbbb")]
    assert complete("mae-launch fetch 20261202", runs) == [("plain", "20261202-0900-bbbb")]
    assert complete("mae-launch logs 20261203-0800-cccc --host gpu", runs) == [("plain", "gpu01"), ("plain", "gpu02")]


def test_jobs_hosts_and_inventories(tmp_path):
    assert complete("mae-launch logs --job f", tmp_path) == [("plain", "finetune")]
    hosts = complete("mae-launch exec -i inventories/pod64.yml --host pod64-host", tmp_path)
    assert hosts == [("plain", f"pod64-host{i}") for i in range(4)]
    assert complete("mae-launch pretrain -i pod6", tmp_path) == [("plain", "pod64")]
    (tmp_path / "mine.yml").write_text("name: mine\n")
    assert ("plain", "mine.yml") in complete("mae-launch check -i mi", tmp_path, cwd=tmp_path)


@pytest.mark.parametrize("shell, words", [("bash", "complete -o nosort -F"), ("zsh", "compdef"), ("fish", "complete --no-files")])
def test_shell_scripts(shell, words, tmp_path):
    env = {**os.environ, "_MAE_LAUNCH_COMPLETE": f"{shell}_source"}
    p = subprocess.run([str(ENTRY)], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and words in p.stdout and "_MAE_LAUNCH_COMPLETE" in p.stdout, p.stdout + p.stderr
