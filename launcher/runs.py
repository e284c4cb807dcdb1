"""Run records and the three things done to a run on its hosts: start, look (poll), stop.

Locally, `runs/<id>/` (or $MAE_LAUNCH_RUNS_DIR/<id>/) holds run.json (jobs, hosts, process-group
ids, files on each host, states), inventory.json (the inventory, secrets masked), the git revision
and a copy of every rendered script. On each host the job files live under `<workdir>/runs/<id>/`
with the names launcher/plan.py gives them.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import json
import os
import pathlib
import subprocess

from launcher import remote
from launcher.errors import UserError
from launcher.inventory import PACKAGE_ROOT, Host, HostPath

STOP_GRACE_MS = 2000


def runs_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("MAE_LAUNCH_RUNS_DIR") or PACKAGE_ROOT / "runs")


def _atomic_write(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def git_revision(root: pathlib.Path = PACKAGE_ROOT) -> str:
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev or "unknown") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


class Run:
    """The local record of one run (several jobs for a pipeline)."""

    def __init__(self, run_id: str, data: dict):
        self.id = run_id
        self.data = data

    @property
    def dir(self) -> pathlib.Path:
        return runs_root() / self.id

    @classmethod
    def create(cls, run_id: str, inv, argv: list[str]) -> "Run":
        run = cls(run_id, {"id": run_id, "created": _now(), "command": argv, "inventory": str(inv.source_path),
                           "launcher": inv.launcher, "git": git_revision(), "jobs": []})
        _atomic_write(run.dir / "inventory.json", json.dumps(inv.snapshot(), indent=1, default=str))
        run.save()
        return run

    @classmethod
    def load(cls, run_id: str | None) -> "Run":
        root = runs_root()
        if run_id is None:
            ids = list_ids()
            if not ids:
                raise UserError(f"no runs recorded under {root}; start one with mae-launch pretrain")
            run_id = ids[-1]
        path = root / run_id / "run.json"
        if not path.is_file():
            raise UserError(f"no run {run_id!r} under {root}; `mae-launch runs` lists the runs")
        return cls(run_id, json.loads(path.read_text()))

    def save(self) -> None:
        _atomic_write(self.dir / "run.json", json.dumps(self.data, indent=1))

    def hosts(self) -> list[Host]:
        snap = json.loads((self.dir / "inventory.json").read_text())
        fields = [f.name for f in dataclasses.fields(Host)]
        out = []
        for h in snap["hosts"]:
            values = {k: h.get(k) for k in fields}
            values["workdir"] = HostPath(values["workdir"])
            out.append(Host(**values))
        return out

    def add_job(self, plan, secrets: list[str]) -> dict:
        entry = {"job": plan.job, "mode": plan.mode, "started": _now(), "state": "starting",
                 "checkpoint": str(plan.checkpoint), "output_dir": str(plan.output_dir), "hosts": {}}
        for hp in plan.hosts:
            _atomic_write(self.dir / f"{plan.job}.{hp.host.name}.sh", _scrub(hp.script, secrets))
            entry["hosts"][hp.host.name] = {
                "ranks": hp.ranks, "pgid": None, "run_dir": str(hp.run_dir),
                "script_path": str(hp.script_path), "log_path": str(hp.log_path),
                "pid_path": str(hp.pid_path), "exit_path": str(hp.exit_path),
                "rank_logs": {str(r): str(p) for r, p in hp.rank_logs.items()}}
        self.data["jobs"] = [j for j in self.data["jobs"] if j["job"] != plan.job] + [entry]
        self.save()
        return entry

    def job(self, name: str | None = None) -> dict:
        jobs = self.data["jobs"]
        if not jobs:
            raise UserError(f"run {self.id} has no job started")
        if name is None:
            return jobs[-1]
        for j in jobs:
            if j["job"] == name:
                return j
        raise UserError(f"run {self.id} has no job {name!r}; it has {', '.join(j['job'] for j in jobs)}")

    def set_state(self, job: str, state: str, **extra) -> None:
        j = self.job(job)
        j["state"] = state
        j.update(extra)
        self.save()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def list_ids() -> list[str]:
    root = runs_root()
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if (p / "run.json").is_file()]
    return [p.name for p in sorted(runs, key=lambda p: (json.loads((p / "run.json").read_text()).get("created", ""), p.name))]


# ---------------------------------------------------------------- on the hosts

def start_job(plan, run: Run, limit: int = remote.DEFAULT_LIMIT, ts: dict | None = None) -> list[remote.HostResult]:
    """Start the plan's script on each of its hosts (detached); record the pgids."""
    secrets_text = plan.secrets_file_text()
    entry = run.add_job(plan, plan.inventory.secret_values())
    by_host = {hp.host.name: hp for hp in plan.hosts}
    own = ts is None
    ts = ts or {h.name: remote.target(h) for h in (hp.host for hp in plan.hosts)}

    def one(t):
        hp = by_host[t.name]
        done = t.run_template("start.sh.j2", timeout=60, check=True, run_id=plan.run_id, host=t.name,
                              job=plan.job, workdir=hp.host.workdir, run_dir=hp.run_dir,
                              script=hp.script, script_path=hp.script_path, exit_path=hp.exit_path,
                              pid_path=hp.pid_path, secrets_text=secrets_text,
                              secrets_path=hp.secrets_path)
        kv = remote.parse_kv(done.stdout)
        return int(kv.get("pgid") or kv["pid"])

    try:
        results = remote.fan_out([ts[n] for n in by_host], one, limit=limit, timeout=120)
    finally:
        if own:
            remote.close_all(ts.values())
    for r in results:
        if r.ok:
            entry["hosts"][r.host]["pgid"] = r.value
    entry["state"] = "running" if all(r.ok for r in results) else "failed to start"
    run.save()
    return results


def stop_run(run: Run, ts: dict | None = None, limit: int = remote.DEFAULT_LIMIT,
             grace_ms: int = STOP_GRACE_MS) -> list[remote.HostResult]:
    """Stop every process group of the run on every host; value per host: processes left (0 = clean)."""
    hosts = {h.name: h for h in run.hosts()}
    involved = sorted({name for j in run.data["jobs"] for name in j["hosts"]}, key=list(hosts).index)
    own = ts is None
    ts = dict(ts or {})
    extra = {n: remote.target(hosts[n]) for n in involved if n not in ts}
    ts.update(extra)

    def one(t):
        jobs = [j["hosts"][t.name] for j in run.data["jobs"] if t.name in j["hosts"]]
        pgids = [int(j["pgid"]) for j in jobs if j.get("pgid")]
        done = t.run_template("stop.sh.j2", timeout=grace_ms / 1000 + 20, check=True, run_id=run.id,
                              host=t.name, pgids=pgids, grace_ms=grace_ms,
                              jobs=[{"exit_path": HostPath(j["exit_path"]), "pid_path": HostPath(j["pid_path"])}
                                    for j in jobs])
        kv = remote.parse_kv(done.stdout)
        left = int(kv.get("left", "0"))
        if left:
            raise remote.RemoteError(t.name, "failed", f"{left} process group(s) of run {run.id} still alive")
        return {"term": kv.get("term", ""), "kill": kv.get("kill", "")}

    try:
        return remote.fan_out([ts[n] for n in involved], one, limit=limit, timeout=grace_ms / 1000 + 30)
    finally:
        remote.close_all(ts.values() if own else extra.values())


@dataclasses.dataclass
class HostState:
    """What one poll saw of one job on one host."""
    host: str
    pid: int | None = None
    alive: bool = False
    exit: int | None = None
    exit_time: float | None = None
    stopped: bool = False
    chunks: dict = dataclasses.field(default_factory=dict)  # file key -> bytes

    @property
    def state(self) -> str:
        if self.exit is not None:
            return f"exited {self.exit}"
        if self.alive:
            return "running"
        if self.stopped:
            return "stopped"
        return "starting" if self.pid is None else "lost"


def log_files(job_host: dict, job: str) -> list[tuple[str, str, str]]:
    """(key, label, path) of the logs of one job on one host: the host log, then one per rank."""
    files = [("h", "", job_host["log_path"])]
    for rank, path in sorted(job_host.get("rank_logs", {}).items(), key=lambda kv: int(kv[0])):
        files.append((f"r{rank}", f"r{rank}", path))
    return files


def poll_host(t: remote.Target, job_host: dict, job: str, offsets: dict, max_bytes: int = 1 << 18,
              timeout: float = 10) -> HostState:
    """One look at one job on one host; `offsets` (file key -> byte offset) is read, not changed."""
    files = [{"key": key, "path": HostPath(path), "offset": offsets.get(key, 0)}
             for key, _, path in log_files(job_host, job)]
    done = t.run_template("poll.sh.j2", timeout=timeout, check=True, max_bytes=max_bytes, files=files,
                          jobs=[{"key": "j", "pid_path": HostPath(job_host["pid_path"]),
                                 "exit_path": HostPath(job_host["exit_path"])}])
    kv = remote.parse_kv(done.stdout)
    st = HostState(t.name, pid=int(kv["j.pid"]) if kv.get("j.pid") else None, alive=kv.get("j.alive") == "1",
                   stopped=kv.get("j.stopped") == "1")
    if kv.get("j.exit", "").strip().lstrip("-").isdigit():
        st.exit = int(kv["j.exit"])
        st.exit_time = float(kv.get("j.exit_time") or 0)
    for f in files:
        value = kv.get(f"{f['key']}.log")
        if value is None:
            continue
        end, _, b64 = value.partition(":")
        st.chunks[f["key"]] = (int(end), base64.b64decode(b64) if b64 else b"")
    return st
