"""mae-launch against a real Slurm cluster (tests/slurm.py: munged, slurmctld, 2 slurmd nodes).

The submit host is this machine (`connection: local`); the run directory and outputs live in a
temporary workdir every node sees. Each test ends with an empty squeue.
"""
import json
import secrets
import signal
import socket
import subprocess
import time

import pytest
import yaml

from cluster_fixtures import ROOT, popen_cli, run_cli, run_processes, wait_for

pytestmark = pytest.mark.slurm

TINY = ["--generated_data", "true", "--generated_size", "64", "--epochs", "1", "--batch_size", "16",
        "--print_freq", "1", "--num_workers", "0"]
LONG = ["--generated_data", "true", "--generated_size", "64", "--epochs", "500", "--batch_size", "16",
        "--num_workers", "0"]
DIGITS = ["--epochs", "1", "--warmup_epochs", "0", "--print_freq", "10", "--num_workers", "0"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inventory(tmp_path, slurm_section=None, jobs=None, data=None) -> str:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    path = tmp_path / "slurm.yml"
    path.write_text(yaml.safe_dump({
        "name": "slurmtest", "launcher": "torchrun", "scheduler": "slurm",
        "slurm": slurm_section or {"partition": "debug", "nodes": 2, "time": "10"},
        "paths": {"workdir": str(work), "venv": str(ROOT / ".venv"), "output": "output",
                  **({"data": data} if data else {})},
        "network": {"interface": "lo", "master_port": _free_port()},
        "env": {"OMP_NUM_THREADS": 1, "MAE_REMAP": "off", "TEST_TOKEN": {"value": "s3cr3t-value", "secret": True}},
        "jobs": jobs or {"pretrain": {"config": "digits_pretrain", "nproc_per_node": 1, "args": TINY}},
    }, sort_keys=False))
    return str(path)


@pytest.fixture
def env(slurm, tmp_path):
    return {"SLURM_CONF": str(slurm.conf), "MAE_LAUNCH_RUNS_DIR": str(tmp_path / "runs")}


def _rid(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


def _record(env, rid) -> dict:
    return json.loads((ROOT / env["MAE_LAUNCH_RUNS_DIR"] / rid / "run.json").read_text())


def test_tiny_pretraining_on_two_nodes(slurm, env, tmp_path):
    # 2-CPU nodes, CPUs bound to tasks (task/affinity): the ranks see the cpus_per_task of the
    # allocation only if srun passes it on (it does not inherit it since Slurm 22.05)
    inv = _inventory(tmp_path, {"partition": "debug", "nodes": 2, "time": "10", "cpus_per_task": 2})
    rid = _rid("tiny")
    p = run_cli(["pretrain", "-i", inv, "--run-id", rid], env_extra=env, timeout=300)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "x 2 process(es) (2 CPU(s) each)" in p.stdout
    assert "submitted as Slurm job" in p.stdout and "running on node1,node2" in p.stdout
    assert "node1 r0  | Training Epoch: [0]" in p.stdout  # rank 1 (on node2) prints nothing
    assert (tmp_path / "work" / "output" / rid / "pretrain" / "checkpoint.pth").is_file()
    job = _record(env, rid)["jobs"][0]
    assert job["state"] == "succeeded" and job["slurm_job_id"].isdigit()
    status = run_cli(["status", rid], env_extra=env, check=0)
    assert "completed" in status.stdout and "node1,node2" in status.stdout
    run_dir = tmp_path / "work" / "runs" / rid
    assert (run_dir / "pretrain.rank1.log").is_file() and (run_dir / "pretrain.node1.log").is_file()
    assert not (run_dir / "pretrain.secrets").exists()
    for f in [*run_dir.iterdir(), *(ROOT / env["MAE_LAUNCH_RUNS_DIR"] / rid).iterdir()]:
        assert b"s3cr3t-value" not in f.read_bytes(), f
    assert slurm.wait_empty() == []


def test_a_failing_rank_ends_the_whole_step_and_is_reported(slurm, env, tmp_path):
    inv, rid = _inventory(tmp_path, jobs={"pretrain": {"config": "digits_pretrain", "nproc_per_node": 1,
                                                       "args": LONG}}), _rid("fail")
    # rank 1 cannot open its log (a directory is in the way): it exits 1 before Python starts,
    # while rank 0 waits for it in the rendezvous; --kill-on-bad-exit must end node1's task too
    (tmp_path / "work" / "runs" / rid / "pretrain.rank1.log").mkdir(parents=True)
    started = time.monotonic()
    p = run_cli(["pretrain", "-i", inv, "--run-id", rid], env_extra=env, timeout=300)
    print(p.stdout, f"\n[failed run ended in {time.monotonic() - started:.1f} s]")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "run failed" in p.stdout and "rank 1" in p.stdout and "failed" in p.stdout
    assert _record(env, rid)["jobs"][0]["state"] == "failed"
    assert slurm.wait_empty() == []
    assert wait_for(lambda: not run_processes(rid), 20)


def test_stop_cancels_a_detached_running_job(slurm, env, tmp_path):
    inv, rid = _inventory(tmp_path, jobs={"pretrain": {"config": "digits_pretrain", "nproc_per_node": 1,
                                                       "args": LONG}}), _rid("stop")
    run_cli(["pretrain", "-i", inv, "--run-id", rid, "--detach"], env_extra=env, check=0)
    run_dir = tmp_path / "work" / "runs" / rid
    assert wait_for(lambda: (run_dir / "pretrain.rank1.log").exists() and run_processes(rid), 120)
    status = run_cli(["status", rid], env_extra=env, check=0)
    assert "running" in status.stdout, status.stdout
    p = run_cli(["stop", rid], env_extra=env, check=0)
    print(status.stdout, p.stdout)
    assert "squeue shows none of them" in p.stdout
    assert slurm.queue() == []
    assert wait_for(lambda: not run_processes(rid), 20), run_processes(rid)
    assert _record(env, rid)["jobs"][0]["state"] == "cancelled"
    assert "cancelled" in run_cli(["status", rid], env_extra=env, check=0).stdout


def test_ctrl_c_on_a_foreground_launch_cancels_the_job(slurm, env, tmp_path):
    inv, rid = _inventory(tmp_path, jobs={"pretrain": {"config": "digits_pretrain", "nproc_per_node": 1,
                                                       "args": LONG}}), _rid("ctrlc")
    proc = popen_cli(["pretrain", "-i", inv, "--run-id", rid], env_extra=env)
    try:
        assert wait_for(lambda: run_processes(rid), 120)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    print(out)
    assert proc.returncode == 130, out
    assert "cancelling Slurm job" in out
    assert slurm.wait_empty() == []
    assert wait_for(lambda: not run_processes(rid), 20)


def test_a_pending_job_shows_its_reason(slurm, env, tmp_path):
    # partition `small` allows 1 node per job: a 2-node job waits there (PartitionNodeLimit). Slurm
    # first gives such a job PartitionConfig and sets PartitionNodeLimit on its next scheduling pass,
    # about a second later; status shows whichever Slurm says at the time.
    inv, rid = _inventory(tmp_path, slurm_section={"partition": "small", "nodes": 2}), _rid("pend")
    shown = []

    def status() -> str:
        shown.append(run_cli(["status", rid], env_extra=env, check=0).stdout)
        return shown[-1]

    try:
        run_cli(["pretrain", "-i", inv, "--run-id", rid, "--detach"], env_extra=env, check=0)
        assert wait_for(lambda: "pending (PartitionNodeLimit)" in status(), 30), shown[-1]
        print(shown[-1])
    finally:  # a failure here leaves no job behind for the next test
        run_cli(["stop", rid], env_extra=env, check=0)
    assert slurm.queue() == []


def test_sbatch_refusal_is_one_error_and_nothing_queued(slurm, env, tmp_path):
    inv, rid = _inventory(tmp_path, slurm_section={"partition": "nosuchpartition", "nodes": 1}), _rid("bad")
    p = run_cli(["pretrain", "-i", inv, "--run-id", rid], env_extra=env, timeout=120)
    print(p.stdout)
    assert p.returncode == 1 and "sbatch refused pretrain" in p.stdout and "Traceback" not in p.stderr
    assert slurm.queue() == []


@pytest.mark.slow
def test_digits_pipeline_chained_by_slurm(slurm, env, tmp_path):
    data = tmp_path / "work" / "data" / "digits"
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-m", "mae.data", "digits", "--out", str(data)],
                   check=True, capture_output=True, cwd=ROOT)
    # one node per stage keeps it light on a 2-core machine; the 2-node step is tested above
    inv = _inventory(tmp_path, slurm_section={"nodes": 1, "time": "30"}, data="data/digits", jobs={
        "pretrain": {"config": "digits_pretrain", "nproc_per_node": 1, "args": DIGITS},
        "finetune": {"config": "digits_finetune", "nproc_per_node": 1, "args": DIGITS},
        "validate": {"config": "digits_finetune", "nproc_per_node": 1, "args": ["--num_workers", "0"]}})
    rid = _rid("pipe")
    started = time.monotonic()
    p = run_cli(["pipeline", "-i", inv, "--run-id", rid], env_extra=env, timeout=900)
    print(p.stdout, f"\n[pipeline took {time.monotonic() - started:.1f} s]")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "after job" in p.stdout  # finetune and validate were submitted with afterok dependencies
    result = json.loads((tmp_path / "work" / "output" / rid / "validate" / "validation.json").read_text())
    assert f"final validation top-1: {float(result['top1']):.2f}%" in p.stdout
    jobs = _record(env, rid)["jobs"]
    assert [j["state"] for j in jobs] == ["succeeded"] * 3
    assert [j["depends_on"] for j in jobs] == [None, jobs[0]["slurm_job_id"], jobs[1]["slurm_job_id"]]
    assert slurm.wait_empty() == []
