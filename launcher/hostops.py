"""The four things done to a job on its hosts: start, poll (one look), stop, tail.

Templates in, facts out: each operation renders one script per host (templates/start.sh.j2,
poll.sh.j2, stop.sh.j2), runs it through the transport, and returns per-host results. Records are
read here, never changed: state changes are the caller's (launcher/orchestrate.py, supervise.py).
"""
from __future__ import annotations

import base64
import dataclasses
import re

from launcher import remote
from launcher.paths import HostPath
from launcher.render import render_template

STOP_GRACE_MS = 2000


def targets_for(run, names) -> dict:
    """host name -> Target, for these hosts of a recorded run."""
    return {n: remote.target(run.host(n)) for n in names}


def start_job(plan, ts: dict, limit: int = remote.DEFAULT_LIMIT, token: str = "") -> list:
    """Start the plan's script on each of its hosts, detached; value per host: its process-group id."""
    secrets_text = plan.secrets_file_text()
    by_host = {hp.host.name: hp for hp in plan.hosts}

    def one(t):
        hp = by_host[t.name]
        done = t.run_template("start.sh.j2", timeout=60, check=True, run_id=plan.run_id, host=t.name,
                              job=plan.job, workdir=hp.host.workdir, run_dir=hp.run_dir,
                              script=hp.script, script_path=hp.script_path, exit_path=hp.exit_path,
                              pid_path=hp.pid_path, secrets_text=secrets_text,
                              secrets_path=hp.secrets_path, token=token)
        kv = remote.parse_kv(done.stdout)
        return int(kv.get("pgid") or kv["pid"])

    return remote.fan_out([ts[n] for n in by_host], one, limit=limit, timeout=120)


def lock_name(plan) -> str:
    """The launch lock of a job: its rendezvous port (torchrun) or its V-IPU partition (poprun)."""
    inv = plan.inventory
    if plan.mode == "torchrun":
        name = f"torchrun-port-{inv.network.master_port}"
    else:
        name = f"poprun-{inv.cluster.vipu_server_host}-{inv.jobs[plan.job].partition}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def lock(plan, run, ts: dict) -> dict:
    """Take the job's launch lock on the controller; the template's key=value answer."""
    t = ts[plan.hosts[0].host.name]
    done = t.run_template("lock.sh.j2", timeout=remote.connect_timeout(t.host) + 30, check=True,
                          lock_name=lock_name(plan), run_id=run.id, token=run.token, release=False)
    return remote.parse_kv(done.stdout)


def release(run, job, ts: dict) -> None:
    """Give back the launch lock `job` took on its first host (recorded as `job.lock`): when a followed
    job ends, when `stop` stopped it, or when `status`/`runs` find a detached one ended."""
    t = ts[next(iter(job.hosts))]
    t.run_template("lock.sh.j2", timeout=remote.connect_timeout(t.host) + 30, check=True,
                   lock_name=job.lock, run_id=run.id, token=run.token, release=True)


def stop_run(run, ts: dict, limit: int = remote.DEFAULT_LIMIT, grace_ms: int = STOP_GRACE_MS) -> list:
    """Stop every process group of the run on every host it used (SIGTERM, SIGKILL after the grace);
    value per host: {'term': groups, 'kill': groups}. A host with processes left is a failure."""

    def one(t):
        jobs = [j.hosts[t.name] for j in run.jobs if t.name in j.hosts]
        script = render_template("stop.sh.j2", run_id=run.id, host=t.name, token=run.token,
                                 pgids=[h.pgid for h in jobs if h.pgid], grace_ms=grace_ms,
                                 jobs=[{"exit_path": h.exit_path, "pid_path": h.pid_path} for h in jobs])
        done = t.run_kept(script, timeout=grace_ms / 1000 + 20, check=True)  # a followed run's shell is open
        kv = remote.parse_kv(done.stdout)
        left = int(kv.get("left", "0"))
        if left:
            raise remote.RemoteError(t.name, "failed", f"{left} process group(s) of run {run.id} still alive")
        return {"term": kv.get("term", ""), "kill": kv.get("kill", "")}

    return remote.fan_out([ts[n] for n in run.host_names()], one, limit=limit, timeout=grace_ms / 1000 + 30)


@dataclasses.dataclass
class HostState:
    """What one poll saw of one job on one host."""
    host: str
    pid: int | None = None
    alive: bool = False
    exit: int | None = None
    exit_time: float | None = None
    stopped: bool = False
    chunks: dict = dataclasses.field(default_factory=dict)  # file key -> (end offset, bytes)

    @property
    def state(self) -> str:
        """running / exited N / stopped (by mae-launch, whatever the ranks' exit status) / starting /
        lost (its process group is gone without an exit status)."""
        if self.stopped and not self.alive:
            return "stopped"
        if self.exit is not None:
            return f"exited {self.exit}"
        if self.alive:
            return "running"
        return "starting" if self.pid is None else "lost"

    @property
    def end(self):
        """How the job ended here: 'stopped', its exit status, 'vanished'; None while it runs or starts."""
        state = self.state
        if state in ("running", "starting"):
            return None
        return {"stopped": "stopped", "lost": "vanished"}.get(state, self.exit)


def poll_host(t: remote.Target, host, offsets: dict, max_bytes: int = 1 << 18, timeout: float = 10,
              tail: bool = False) -> HostState:
    """One look at one job (`host`: its HostRecord) on one host: state, and the log bytes after
    `offsets` (file key -> byte offset; read, not changed), or with `tail` the last max_bytes."""
    files = [{"key": key, "path": HostPath(path), "offset": offsets.get(key, 0), "tail": tail}
             for key, _, path in host.log_files()]
    script = render_template("poll.sh.j2", max_bytes=max_bytes, files=files,
                             jobs=[{"key": "j", "pid_path": host.pid_path, "exit_path": host.exit_path}])
    done = t.run_kept(script, timeout=timeout, check=True)  # every poll_s: no login shell each time
    kv = remote.parse_kv(done.stdout)
    st = HostState(t.name, pid=int(kv["j.pid"]) if kv.get("j.pid") else None, alive=kv.get("j.alive") == "1",
                   stopped=kv.get("j.stopped") == "1")
    if kv.get("j.exit", "").strip().lstrip("-").isdigit():
        st.exit = int(kv["j.exit"])
        st.exit_time = float(kv.get("j.exit_time") or 0)
    for f in files:
        value = kv.get(f"{f['key']}.log")
        if value is not None:
            end, _, b64 = value.partition(":")
            st.chunks[f["key"]] = (int(end), base64.b64decode(b64) if b64 else b"")
    return st


def poll_job(job, ts: dict, names, offsets: dict, timeout: float = 10, **kw) -> list:
    """poll_host on each named host of `job` at once; value per host: its HostState."""
    return remote.fan_out([ts[n] for n in names], lambda t: poll_host(
        t, job.hosts[t.name], offsets.get(t.name, {}), **kw), timeout=timeout)


def tail_job(job, ts: dict, max_bytes: int) -> list:
    """The last `max_bytes` of every log of `job` on every host; value per host: its HostState."""
    return poll_job(job, ts, list(job.hosts), {}, timeout=60, max_bytes=max_bytes, tail=True)
