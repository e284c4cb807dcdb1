"""Look at and control recorded runs: status, logs (tail and follow), stop.

Each function loads the run's record, opens targets on the hosts it used, does one thing through
launcher/hostops.py or launcher/supervise.py, saves any state change and closes the connections.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import time
from typing import Optional

from rich.console import Console

from launcher import clean as clean_mod
from launcher import hostops, remote, report, supervise
from launcher.errors import UserError
from launcher.runs import RunStore, epoch, utc_now


def _with_targets(run, names, fn):
    ts = hostops.targets_for(run, names)
    try:
        return fn(ts)
    finally:
        remote.close_all(ts.values())


def tail(run_id: Optional[str], job_name: Optional[str], max_bytes: int, store: Optional[RunStore] = None):
    """(run, job, results): the last `max_bytes` of every log of the job on every host. What the hosts
    said settles the record (see `settle`)."""
    store = store or RunStore()
    run = store.load(run_id)
    job = run.job(job_name)

    def look(ts):
        results = hostops.tail_job(job, ts, max_bytes)
        settle(run, job, results, ts, store)
        return results

    return run, job, _with_targets(run, list(job.hosts), look)


def settle(run, job, results, ts: dict, store: RunStore) -> None:
    """Write back what the hosts reported: when each host answered last, and the end of a job nobody
    followed (a detached one: succeeded / failed with each host's exit status / stopped), whose launch
    lock is then given back. A host that did not answer changes nothing."""
    now = utc_now()
    for r in results:
        if r.ok:
            job.hosts[r.host].last_seen = now
    ended = job.settle({r.host: host_end(job, r.value) for r in results if r.ok})
    store.save(run)
    if ended and job.lock:
        with contextlib.suppress(remote.RemoteError):
            hostops.release(run, job, ts)


def host_end(job, st):
    """How the job ended on a host (HostState.end), where an exit status != 0 written after `stop` was
    asked for the job reads 'stopped': a rank's own teardown once its peers were stopped (a gloo error
    where another host was reached first). Host clocks may differ from this one by up to 2 s."""
    end = st.end
    if isinstance(end, int) and end != 0 and job.stop_requested and st.exit_time \
            and st.exit_time >= epoch(job.stop_requested) - 2:
        return "stopped"
    return end


def unanswered(run, job, host: str) -> str:
    """The state of a host that did not answer: `unreachable (last seen T)`, or, once a live job's host
    has not answered for its host_timeout since T, `lost (last seen T)`."""
    seen = job.hosts[host].last_seen or job.started
    age = time.time() - epoch(seen)
    lost = job.live and age >= getattr(run.host(host), "host_timeout", 60.0)
    return f"{'lost' if lost else 'unreachable'} (last seen {seen})"


def refresh(store: RunStore, records: list) -> None:
    """Settle the latest job of each run while it is recorded live (process groups; Slurm keeps its own
    account) from one look at its hosts, all runs at once. Earlier jobs of a run were settled by the
    follower that started the next one."""
    live = [(run, run.jobs[-1]) for run in records if run.jobs and run.jobs[-1].live and not run.jobs[-1].is_slurm]

    def one(pair):
        run, job = pair
        _with_targets(run, list(job.hosts), lambda ts: settle(
            run, job, hostops.poll_job(job, ts, list(job.hosts), {}, max_bytes=0, tail=True), ts, store))

    if live:
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(live))) as pool:
            list(pool.map(one, live))


def log_keys(run, job, host_names, ranks) -> dict:
    """host -> the log keys to show (launcher/runs.py HostRecord.log_files): every host and log, or
    those of the named hosts and ranks; a host or rank the job does not have is bad input."""
    unknown = [h for h in host_names if h not in job.hosts]
    if unknown:
        raise UserError(f"run {run.id} ({job.job}) has no host {unknown[0]}; its hosts are {', '.join(job.hosts)}")
    owners = {rank: name for name, h in job.hosts.items() for rank in h.rank_logs}
    missing = [r for r in ranks if r not in owners]
    if missing:
        raise UserError(f"run {run.id} ({job.job}) has no log of rank {missing[0]}; its ranks are "
                        f"{', '.join(str(r) for r in sorted(owners))}")
    keys = {}
    for name, h in job.hosts.items():
        wanted = [f"r{r}" for r in ranks if owners[r] == name]
        if (host_names and name not in host_names) or (ranks and not wanted):
            continue
        keys[name] = set(wanted) if ranks else set(h.labels())
    return keys


def watch(con: Console, run, job, keys: dict, offsets: dict) -> int:
    """Print new lines of these logs (host -> log keys) until the job ends on every host (or Ctrl-C);
    never stops the run."""
    outcome = _with_targets(run, run.host_names(), lambda ts: supervise.follow(
        run, job, ts, con, None, fail_fast=False, host_filter=keys, offsets=offsets))
    return 0 if outcome.rc in (0, 1) else outcome.rc


def stop(run_id: Optional[str], grace: float, store: Optional[RunStore] = None):
    """(run, results): stop every process group of the run on every host it used. The run is recorded
    as stopped only when every host confirmed that nothing of it is left."""
    store = store or RunStore()
    run = store.load(run_id)
    live = [j for j in run.jobs if j.live and j.lock]
    for job in run.jobs:
        job.stop_asked()
    store.save(run)

    def stop_all(ts):
        results = hostops.stop_run(run, ts, grace_ms=int(grace * 1000))
        if all(r.ok for r in results):
            run.stopped()
            store.save(run)
            for job in live:  # their launch locks are free again
                with contextlib.suppress(remote.RemoteError):
                    hostops.release(run, job, ts)
        return results

    return run, _with_targets(run, run.host_names(), stop_all)


def clean(con: Console, run_ids: list, outputs: bool, confirm, store: Optional[RunStore] = None) -> int:
    """Remove each run (record here, run dirs on its hosts, outputs with `outputs`) unless a process of
    it is alive or a host does not answer; `confirm(text)` approves the listed outputs. Exit status."""
    store = store or RunStore()
    rc = 0
    for run_id in run_ids:
        run = store.load(run_id)
        plan = clean_mod.host_paths(run, outputs)
        probe = clean_mod.look(run, plan, remove=False)
        reason = _clean_refusal(run, probe)
        if reason:
            con.print(f"[red]kept run {run.id}[/]: {reason}", soft_wrap=True)
            rc = 1
            continue
        if outputs and not confirm(_listing(run, probe)):
            con.print(f"kept run {run.id}")
            continue
        done = clean_mod.look(run, plan, remove=True)
        if all(r.ok for r in done):
            clean_mod.remove_record(store, run.id)
            con.print(f"removed run {run.id} ({len(done)} host(s){', outputs included' if outputs else ''})")
        else:
            con.print(report.failure_message(f"cleaning run {run.id}", done), markup=False, style="red")
            rc = 1
    return rc


def _clean_refusal(run, probe) -> str:
    bad = [r for r in probe if not r.ok]
    if bad:
        return f"{', '.join(r.host for r in bad)} did not answer ({bad[0].error}); nothing removed, try again later"
    live = [r.host for r in probe if r.value["live"]]
    if live:
        return f"it is still running on {', '.join(live)}; stop it first (mae-launch stop {run.id})"
    return ""


def _listing(run, probe) -> str:
    lines = [f"run {run.id}: these will be removed"]
    for r in probe:
        for path, kib in r.value["sizes"].items():
            if kib is not None:
                lines.append(f"  {r.host}:{path}  ({kib / 1024:.1f} MiB)")
    return "\n".join(lines)
