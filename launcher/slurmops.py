"""A job under Slurm, through the submit host: submit (sbatch), look (squeue/sacct), cancel (scancel).

Slurm runs and chains the jobs; mae-launch only talks to it from the submit host (a `Target`, SSH or
local) and reads the files the batch script leaves in the run directory on the shared filesystem
(launcher/backends/slurm.py names them). Templates in, facts out, like launcher/hostops.py: records
are read here, never changed.
"""
from __future__ import annotations

import base64
import dataclasses

from launcher import remote
from launcher.paths import HostPath

SUBMIT_TIMEOUT = 60.0
QUERY_TIMEOUT = 20.0
CANCEL_WAIT_S = 30
# Slurm's job states (squeue %T / sacct State / scontrol JobState) -> what mae-launch reports.
STATES = {"PENDING": "pending", "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running",
          "SUSPENDED": "running", "STAGE_OUT": "running", "COMPLETED": "completed", "FAILED": "failed",
          "NODE_FAIL": "failed", "BOOT_FAIL": "failed", "OUT_OF_MEMORY": "failed", "TIMEOUT": "timeout",
          "DEADLINE": "timeout", "CANCELLED": "cancelled", "PREEMPTED": "cancelled", "REQUEUED": "pending",
          "RESIZING": "running", "REVOKED": "cancelled", "SPECIAL_EXIT": "failed"}
FINAL = ("completed", "failed", "timeout", "cancelled")


@dataclasses.dataclass
class SlurmState:
    job_id: str
    state: str = "unknown"         # pending | running | completed | failed | timeout | cancelled | unknown
    slurm_state: str = ""          # Slurm's own word (e.g. PENDING, CANCELLED)
    reason: str = ""               # why pending (Resources, Priority, PartitionNodeLimit, Dependency...)
    nodes: list = dataclasses.field(default_factory=list)
    exit: str = ""                 # Slurm's exit code "code:signal"

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def describe(self) -> str:
        if self.state == "pending" and self.reason and self.reason != "None":
            return f"pending ({self.reason})"
        if self.state in ("failed", "timeout") and self.exit and self.exit != "0:0":
            return f"{self.state} (exit {self.exit})"
        return self.state

    def settle(self, exit_status: int | None) -> "SlurmState":
        """Slurm no longer knows the job (no accounting, purged): its batch script's exit file decides."""
        if self.state == "unknown" and exit_status is not None:
            self.state = "completed" if exit_status == 0 else "failed"
            self.exit = f"{exit_status}:0"
        return self


def submit(plan, t: remote.Target, dependency: str | None = None) -> str:
    """sbatch the plan's batch script from the submit host; the Slurm job id. RemoteError when refused."""
    hp = plan.controller
    done = t.run_template("slurm_submit.sh.j2", timeout=SUBMIT_TIMEOUT, check=False,
                          run_dir=hp.run_dir, exit_path=hp.exit_path, script=hp.script,
                          script_path=hp.script_path, secrets_text=plan.secrets_file_text(),
                          secrets_path=hp.secrets_path, dependency=dependency, jobid_path=hp.pid_path)
    job_id = remote.parse_kv(done.stdout).get("jobid", "")
    if done.rc != 0 or not job_id.isdigit():
        why = " ".join(done.stderr.split()[-40:]) or f"exit {done.rc}"
        raise remote.RemoteError(t.name, "failed", f"sbatch refused {plan.job}: {why}")
    return job_id


def query(t: remote.Target, job_ids: list[str]) -> dict[str, SlurmState]:
    """One look at the given Slurm jobs (squeue, then sacct, then scontrol)."""
    if not job_ids:
        return {}
    kv = remote.parse_kv(t.run_template("slurm_query.sh.j2", timeout=QUERY_TIMEOUT, check=True,
                                        job_ids=job_ids).stdout)
    out = {}
    for job_id in job_ids:
        word = kv.get(f"{job_id}.state", "").split(" ")[0].strip().rstrip("+")
        out[job_id] = SlurmState(job_id, STATES.get(word, "unknown"), word, kv.get(f"{job_id}.reason", ""),
                                 [n for n in kv.get(f"{job_id}.nodes", "").split(",") if n],
                                 kv.get(f"{job_id}.exit", ""))
    return out


def cancel(t: remote.Target, job_ids: list[str]) -> list[str]:
    """scancel these Slurm jobs; wait until squeue shows none of them. Returns the ids still queued."""
    if not job_ids:
        return []
    done = t.run_template("slurm_cancel.sh.j2", timeout=CANCEL_WAIT_S + 30, check=True,
                          job_ids=job_ids, wait_s=CANCEL_WAIT_S)
    return remote.parse_kv(done.stdout).get("left", "").split()


def log_files(job, nodes: list[str]) -> list[tuple[str, str, str, HostPath]]:
    """(key, host label, rank label, path) of a Slurm job's logs: batch log, node logs, rank logs.

    Host labels are the allocation's node names when known (node<N> otherwise)."""
    h = next(iter(job.hosts.values()))
    per_node = max(1, len(h.ranks) // max(1, job.nodes))

    def node_name(i):
        return nodes[i] if i < len(nodes) else f"node{i}"

    files = [("b", node_name(0), "", h.log_path)]
    files += [(f"n{i}", node_name(i), "", HostPath(f"{h.run_dir}/{job.job}.node{i}.log")) for i in range(job.nodes)]
    for rank, path in sorted(h.rank_logs.items()):
        files.append((f"r{rank}", node_name(rank // per_node), f"r{rank}", path))
    return files


def read_logs(t: remote.Target, job, nodes: list[str], offsets: dict, max_bytes: int = 1 << 18,
              tail: bool = False) -> tuple[dict, int | None]:
    """New bytes of every log after `offsets` (key -> offset), or with `tail` the last max_bytes:
    ({key: (end, bytes)}, the batch script's exit status or None)."""
    h = next(iter(job.hosts.values()))
    files = [{"key": k, "path": p, "offset": offsets.get(k, 0), "tail": tail} for k, _, _, p in log_files(job, nodes)]
    done = t.run_template("poll.sh.j2", timeout=QUERY_TIMEOUT, check=True, max_bytes=max_bytes, files=files,
                          jobs=[{"key": "j", "pid_path": h.pid_path, "exit_path": h.exit_path}])
    kv = remote.parse_kv(done.stdout)
    chunks = {}
    for f in files:
        if kv.get(f"{f['key']}.log") is not None:
            end, _, b64 = kv[f"{f['key']}.log"].partition(":")
            chunks[f["key"]] = (int(end), base64.b64decode(b64) if b64 else b"")
    code = kv.get("j.exit", "").strip()
    return chunks, int(code) if code.lstrip("-").isdigit() else None
