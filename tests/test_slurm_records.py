"""Slurm job records and states without a cluster: what Slurm's words become, and run.json round trips."""
from pathlib import Path

from launcher import slurmops
from launcher.inventory import parse_inventory
from launcher.plan import plan_job
from launcher.runs import RunRecord, from_json, to_json

INV = """\
name: s
launcher: torchrun
scheduler: slurm
slurm: {nodes: 2}
jobs:
  pretrain: {config: digits_pretrain, nproc_per_node: 2}
  finetune: {config: digits_finetune}
"""


def _inv():
    return parse_inventory(INV, "/tmp/s.yml", config_names={"digits_pretrain": {"job": "pretrain"},
                                                             "digits_finetune": {"job": "finetune"}})


def test_slurm_words_become_states_and_sentences():
    assert slurmops.STATES["COMPLETING"] == "running" and slurmops.STATES["NODE_FAIL"] == "failed"
    pending = slurmops.SlurmState("7", "pending", "PENDING", "Resources")
    assert pending.describe() == "pending (Resources)" and not pending.final
    assert slurmops.SlurmState("7", "failed", "FAILED", exit="1:0").describe() == "failed (exit 1:0)"
    assert slurmops.SlurmState("7", "timeout", "TIMEOUT", exit="0:15").describe() == "timeout (exit 0:15)"
    assert slurmops.SlurmState("7", "cancelled", "CANCELLED").final
    # Slurm forgot the job (no accounting): the batch script's exit status decides
    assert slurmops.SlurmState("7").settle(0).state == "completed"
    assert slurmops.SlurmState("7").settle(143).describe() == "failed (exit 143:0)"
    assert slurmops.SlurmState("7").settle(None).state == "unknown"


def test_a_slurm_job_record_round_trips_and_follows_slurm():
    inv = _inv()
    run = RunRecord.new("r1", inv, ["mae-launch", "pipeline"])
    first = run.add_job(plan_job(inv, "pretrain", "r1"))
    second = run.add_job(plan_job(inv, "finetune", "r1"))
    assert first.is_slurm and first.nodes == 2 and list(first.hosts) == ["submit"]
    first.submitted("41", None)
    second.submitted("42", "41")
    first.slurm_seen("pending", "PENDING", "Priority")
    assert first.state == "pending" and first.reason == "Priority" and first.live
    first.slurm_seen("completed", "COMPLETED")
    second.slurm_seen("failed", "FAILED", failure="host node2 rank 3: rank failed with exit code 1")
    back = from_json(to_json(run))
    assert [(j.slurm_job_id, j.depends_on, j.state) for j in back.jobs] == [("41", None, "succeeded"),
                                                                          ("42", "41", "failed")]
    assert back.jobs[1].failure.startswith("host node2 rank 3")
    assert [j.slurm_job_id for j in back.slurm_jobs()] == ["41", "42"]


def test_cancel_marks_only_live_jobs():
    inv = _inv()
    run = RunRecord.new("r2", inv, [])
    done, queued = (run.add_job(plan_job(inv, j, "r2")) for j in ("pretrain", "finetune"))
    done.submitted("1", None)
    done.slurm_seen("completed", "COMPLETED")
    queued.submitted("2", "1")
    for j in run.jobs:
        j.cancelled()
    assert [j.state for j in run.jobs] == ["succeeded", "cancelled"]


def test_log_files_label_ranks_with_the_allocation_nodes():
    inv = _inv()
    job = RunRecord.new("r3", inv, []).add_job(plan_job(inv, "pretrain", "r3"))
    files = slurmops.log_files(job, ["gpu07", "gpu09"])
    assert [(k, host, label) for k, host, label, _ in files] == [
        ("b", "gpu07", ""), ("n0", "gpu07", ""), ("n1", "gpu09", ""),
        ("r0", "gpu07", "r0"), ("r1", "gpu07", "r1"), ("r2", "gpu09", "r2"), ("r3", "gpu09", "r3")]
    assert Path(files[2][3]).name == "pretrain.node1.log"
    assert [h for _, h, _, _ in slurmops.log_files(job, [])][:3] == ["node0", "node0", "node1"]
