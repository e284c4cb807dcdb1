"""Typed run records and their store.

A run (one job, or a pipeline of several) is a `RunRecord`: its jobs (`JobRecord`), and for each job
the hosts where a script was started (`HostRecord`: ranks, process group, files on the host). Records
are built from a plan, change state only through their methods, and are written to
`runs/<id>/run.json` (or $MAE_LAUNCH_RUNS_DIR/<id>/) by `RunStore` alone, atomically. Beside run.json:
inventory.json (the inventory, secrets masked) and a copy of every rendered job script.

No code outside this module reads run.json by key.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import pathlib
import re
import secrets
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Optional

from launcher.errors import PlanError, UserError
from launcher.inventory import PACKAGE_ROOT, Host
from launcher.paths import HostPath

FORMAT = 2          # run.json layout version
LIVE_STATES = ("starting", "running", "submitted", "pending")
# How a Slurm job ended (launcher/slurmops.py's words) -> the job's state.
SLURM_END = {"completed": "succeeded", "failed": "failed", "timeout": "timed out", "cancelled": "cancelled"}


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(stamp: str) -> float:
    """Seconds since the epoch of a `utc_now()` stamp."""
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def git_revision(root: pathlib.Path = PACKAGE_ROOT) -> str:
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class HostRecord:
    """One job's script on one host: where its files are and which process group runs it."""
    name: str
    ranks: list
    run_dir: HostPath
    script_path: HostPath
    log_path: HostPath
    pid_path: HostPath
    exit_path: HostPath
    rank_logs: dict                 # global rank (int) -> log path
    pgid: Optional[int] = None
    output_dir: Optional[HostPath] = None   # the job's output folder as seen on this host
    last_seen: Optional[str] = None         # when `status` last had an answer from this host

    @classmethod
    def from_plan(cls, hp) -> "HostRecord":
        return cls(name=hp.host.name, ranks=list(hp.ranks), run_dir=hp.run_dir, script_path=hp.script_path,
                   log_path=hp.log_path, pid_path=hp.pid_path, exit_path=hp.exit_path,
                   rank_logs=dict(hp.rank_logs), output_dir=hp.output_dir)

    def log_files(self) -> list[tuple[str, str, HostPath]]:
        """(key, label, path) of this host's logs: the host log, then one per rank."""
        files = [("h", "", self.log_path)]
        for rank, path in sorted(self.rank_logs.items()):
            files.append((f"r{rank}", f"r{rank}", path))
        return files

    def labels(self) -> dict[str, str]:
        return {key: label for key, label, _ in self.log_files()}


@dataclass
class JobRecord:
    """One job of a run and its state: starting, running, succeeded, failed, failed to start, stopped."""
    job: str
    mode: str
    started: str
    checkpoint: str
    output_dir: str
    hosts: dict                     # host name -> HostRecord
    state: str = "starting"
    failure: Optional[str] = None
    ended: Optional[str] = None
    # Slurm jobs (mode 'slurm'): the one host is the submit host
    slurm_job_id: Optional[str] = None
    depends_on: Optional[str] = None          # the Slurm job this one runs after (afterok)
    nodes: int = 1                            # nodes of the allocation
    slurm_state: Optional[str] = None         # Slurm's last word on it (PENDING, COMPLETED, ...)
    reason: Optional[str] = None              # why it was pending
    lock: Optional[str] = None                # the launch lock it holds on its first host (process groups)
    stop_requested: Optional[str] = None      # when `stop` was first asked for it (confirmed or not)

    @classmethod
    def from_plan(cls, plan) -> "JobRecord":
        return cls(job=plan.job, mode=plan.mode, started=utc_now(), checkpoint=str(plan.checkpoint),
                   output_dir=str(plan.output_dir), nodes=len(plan.placement) if plan.mode == "slurm" else 1,
                   hosts={hp.host.name: HostRecord.from_plan(hp) for hp in plan.hosts})

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    def started_on(self, pgids: dict) -> None:
        """The start went out: pgids of the hosts that started; any host missing = failed to start."""
        for name, pgid in pgids.items():
            self.hosts[name].pgid = pgid
        self.state = "running" if set(pgids) == set(self.hosts) else "failed to start"

    def succeeded(self) -> None:
        self.state, self.ended = "succeeded", utc_now()

    def failed(self, reason: str) -> None:
        self.state, self.failure, self.ended = "failed", reason, utc_now()

    def stopped(self) -> None:
        if self.live:
            self.state, self.ended = "stopped", utc_now()

    def stop_asked(self) -> None:
        if self.live and self.stop_requested is None:
            self.stop_requested = utc_now()

    def settle(self, ends: dict) -> bool:
        """What the hosts report of a live job nobody follows (a detached one): `ends` maps each host that
        answered to how its job ended there ('stopped', 'vanished' or an exit status), or None while it
        runs. Once every host has ended: succeeded when each exited 0, stopped when one was stopped,
        else failed with the exit status of each host. True when the state changed."""
        if not self.live or self.is_slurm or set(ends) != set(self.hosts) or None in ends.values():
            return False
        if "stopped" in ends.values():
            self.stopped()
        elif all(v == 0 for v in ends.values()):
            self.succeeded()
        else:
            codes = ", ".join(f"{n} {'vanished without an exit status' if v == 'vanished' else f'exited {v}'}"
                              for n, v in ends.items())
            self.failed(codes)
        return True

    @property
    def is_slurm(self) -> bool:
        return self.mode == "slurm"

    def submitted(self, job_id: str, depends_on: Optional[str]) -> None:
        self.slurm_job_id, self.depends_on, self.state = job_id, depends_on, "submitted"

    def failed_to_submit(self, reason: str) -> None:
        self.state, self.failure, self.ended = "failed to submit", reason, utc_now()

    def slurm_seen(self, state: str, slurm_state: str, reason: str = "", failure: Optional[str] = None) -> None:
        """What Slurm said: pending (with reason) / running, or how it ended (SLURM_END). A job whose
        end is already recorded keeps it."""
        self.slurm_state = slurm_state
        if not self.live:
            return
        if state in SLURM_END:
            self.state, self.ended, self.failure = SLURM_END[state], utc_now(), failure
        elif state in ("pending", "running"):
            self.state, self.reason = state, (reason if state == "pending" else None)

    def cancelled(self) -> None:
        if self.live:
            self.state, self.ended = "cancelled", utc_now()


@dataclass
class RunRecord:
    id: str
    created: str
    command: list
    inventory: str                  # absolute path of the inventory file it was started with
    launcher: str
    git: str
    hosts: dict = field(default_factory=dict)    # host name -> connection settings (Host fields)
    jobs: list = field(default_factory=list)      # JobRecord, in start order
    resumed: list = field(default_factory=list)   # times of each --resume
    validation: Optional[dict] = None
    token: str = ""  # random, per run: stop and fail-fast signal only processes carrying it (MAE_LAUNCH_TOKEN)

    @classmethod
    def new(cls, run_id: str, inv, argv: list) -> "RunRecord":
        return cls(id=run_id, created=utc_now(), command=list(argv),
                   inventory=str(pathlib.Path(inv.source_path).resolve()), launcher=inv.launcher,
                   git=git_revision(), token=secrets.token_hex(16))

    def add_job(self, plan) -> JobRecord:
        """Record a job about to start (replacing an earlier record of the same job, e.g. on resume)."""
        job = JobRecord.from_plan(plan)
        for hp in plan.hosts:
            self.hosts[hp.host.name] = dataclasses.asdict(hp.host)
        self.jobs = [j for j in self.jobs if j.job != job.job] + [job]
        return job

    def job(self, name: Optional[str] = None) -> JobRecord:
        if not self.jobs:
            raise UserError(f"run {self.id} has no job started")
        if name is None:
            return self.jobs[-1]
        for j in self.jobs:
            if j.job == name:
                return j
        raise UserError(f"run {self.id} has no job {name!r}; it has {', '.join(j.job for j in self.jobs)}")

    def host(self, name: str) -> Host:
        values = dict(self.hosts[name])
        values["workdir"] = HostPath(values["workdir"])
        return Host(**values)

    def host_names(self) -> list[str]:
        """Every host any job of the run was started on, in first-seen order."""
        return list(dict.fromkeys(n for j in self.jobs for n in j.hosts))

    def resume(self) -> None:
        self.resumed.append(utc_now())

    def record_validation(self, result: dict) -> None:
        self.validation = dict(result)

    def stopped(self) -> None:
        for j in self.jobs:
            j.stopped()

    def slurm_jobs(self) -> list:
        return [j for j in self.jobs if j.is_slurm and j.slurm_job_id]

    def summary(self) -> str:
        return ", ".join(f"{j.job}: {j.state}" for j in self.jobs) or "-"


# ---------------------------------------------------------------- run.json, in one place

def to_json(run: RunRecord) -> dict:
    data = dataclasses.asdict(run)
    data["format"] = FORMAT
    for job in data["jobs"]:
        for host in job["hosts"].values():
            host["rank_logs"] = {str(r): p for r, p in host["rank_logs"].items()}
    return data


def _host_record(data: dict) -> HostRecord:
    paths = {k: HostPath(data[k]) for k in ("run_dir", "script_path", "log_path", "pid_path", "exit_path")}
    out = HostPath(data["output_dir"]) if data.get("output_dir") else None
    return HostRecord(name=data["name"], ranks=[int(r) for r in data["ranks"]], pgid=data.get("pgid"),
                      rank_logs={int(r): HostPath(p) for r, p in data["rank_logs"].items()}, output_dir=out,
                      last_seen=data.get("last_seen"), **paths)


def from_json(data: dict) -> RunRecord:
    """Build a RunRecord from parsed run.json; KeyError/TypeError/ValueError on a malformed one."""
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}, this mae-launch reads format {FORMAT}")
    jobs = []
    for j in data["jobs"]:
        hosts = {name: _host_record(h) for name, h in j["hosts"].items()}
        jobs.append(JobRecord(**{**j, "hosts": hosts}))
    fields = {f.name for f in dataclasses.fields(RunRecord)}
    return RunRecord(**{**{k: v for k, v in data.items() if k in fields}, "jobs": jobs})


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_run_id(run_id: str) -> str:
    """A run id is a file name here and on every host: no '/', no '..', no leading '.' or '-'."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise PlanError(f"run id {run_id!r} is not usable: use letters, digits, '.', '_' or '-' (up to 100, not starting with '.' or '-')")
    return run_id


def runs_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("MAE_LAUNCH_RUNS_DIR") or PACKAGE_ROOT / "runs")


def atomic_write(path: pathlib.Path, text: str, mode: int = 0o600) -> None:
    """Write through a uniquely named temporary file, then rename: readers and concurrent writers
    never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


class RunStore:
    """The local run records under one directory (default `runs/` of the project)."""

    def __init__(self, root: Optional[pathlib.Path] = None):
        self.root = pathlib.Path(root) if root is not None else runs_root()

    def dir(self, run_id: str) -> pathlib.Path:
        return self.root / check_run_id(run_id)

    def exists(self, run_id: str) -> bool:
        return (self.dir(run_id) / "run.json").is_file()

    def create(self, run: RunRecord, inventory_snapshot: dict) -> RunRecord:
        """Record a new run; a run id already recorded is refused (its record is never overwritten)."""
        if self.exists(run.id):
            raise UserError(f"run {run.id} already exists under {self.root}; choose another --run-id, "
                            f"or continue it with --resume {run.id}")
        atomic_write(self.dir(run.id) / "inventory.json", json.dumps(inventory_snapshot, indent=1, default=str))
        self.save(run)
        return run

    def discard(self, run_id: str) -> None:
        """Remove the record of a run that never started a job (only the files `create` wrote)."""
        d = self.dir(run_id)
        for name in ("run.json", "inventory.json"):
            (d / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            d.rmdir()

    def save(self, run: RunRecord) -> None:
        atomic_write(self.dir(run.id) / "run.json", json.dumps(to_json(run), indent=1))

    def save_script(self, run_id: str, name: str, text: str) -> None:
        atomic_write(self.dir(run_id) / name, text)

    def load(self, run_id: Optional[str] = None) -> RunRecord:
        """The run `run_id` (default: the newest); one-sentence UserError when absent or unreadable."""
        if run_id is None:
            ids = self.list_ids()
            if not ids:
                raise UserError(f"no runs recorded under {self.root}; start one with mae-launch pretrain")
            run_id = ids[-1]
        path = self.dir(run_id) / "run.json"
        if not path.is_file():
            raise UserError(f"no run {run_id!r} under {self.root}; `mae-launch runs` lists the runs")
        try:
            return from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{path}: the run record cannot be read ({type(exc).__name__}: {exc}); "
                            "it is damaged or from another mae-launch version") from None

    def list_ids(self) -> list[str]:
        """Run ids, oldest first (by creation time, then id); unreadable records are left out."""
        if not self.root.is_dir():
            return []
        found = []
        for p in self.root.iterdir():
            try:
                created = json.loads((p / "run.json").read_text()).get("created", "")
            except (OSError, ValueError, AttributeError):
                continue
            found.append((str(created), p.name))
        return [name for _, name in sorted(found)]
