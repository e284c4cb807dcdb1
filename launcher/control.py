"""Look at and control recorded runs: status, logs (tail and follow), stop.

Each function loads the run's record, opens targets on the hosts it used, does one thing through
launcher/hostops.py or launcher/supervise.py, saves any state change and closes the connections.
"""
from __future__ import annotations

from typing import Optional

from rich.console import Console

from launcher import clean as clean_mod
from launcher import hostops, remote, report, supervise
from launcher.runs import RunStore


def _with_targets(run, names, fn):
    ts = hostops.targets_for(run, names)
    try:
        return fn(ts)
    finally:
        remote.close_all(ts.values())


def tail(run_id: Optional[str], job_name: Optional[str], max_bytes: int, store: Optional[RunStore] = None):
    """(run, job, results): the last `max_bytes` of every log of the job on every host."""
    run = (store or RunStore()).load(run_id)
    job = run.job(job_name)
    results = _with_targets(run, list(job.hosts), lambda ts: hostops.tail_job(job, ts, max_bytes))
    return run, job, results


def watch(con: Console, run, job, host_filter: tuple, offsets: dict) -> int:
    """Print new log lines until the job ends on every host (or Ctrl-C); never stops the run."""
    outcome = _with_targets(run, run.host_names(), lambda ts: supervise.follow(
        run, job, ts, con, None, fail_fast=False, host_filter=host_filter, offsets=offsets))
    return 0 if outcome.rc in (0, 1) else outcome.rc


def stop(run_id: Optional[str], grace: float, store: Optional[RunStore] = None):
    """(run, results): stop every process group of the run on every host it used; states saved."""
    store = store or RunStore()
    run = store.load(run_id)
    results = _with_targets(run, run.host_names(),
                            lambda ts: hostops.stop_run(run, ts, grace_ms=int(grace * 1000)))
    run.stopped()
    store.save(run)
    return run, results


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
