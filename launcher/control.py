"""Look at and control recorded runs: status, logs (tail and follow), stop.

Each function loads the run's record, opens targets on the hosts it used, does one thing through
launcher/hostops.py or launcher/supervise.py, saves any state change and closes the connections.
"""
from __future__ import annotations

from typing import Optional

from rich.console import Console

from launcher import hostops, remote, supervise
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
