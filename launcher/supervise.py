"""Follow a running job on all its hosts; fail fast.

Every `poll` seconds each host is asked (one command over its open connection) for its job state and
the new bytes of its logs, which are printed merged. If any host's job exits non-zero, disappears
without an exit status, or the host stops answering, every host's process groups of the run are
stopped at once (SIGTERM, SIGKILL after a grace period) and the earliest failure is reported: host,
rank, exit code and the last lines of its log. Ctrl-C (SIGINT) and SIGTERM do the same teardown.
With fail_fast=False (`logs --follow`) nothing is stopped: Ctrl-C only ends the watching.
"""
from __future__ import annotations

import dataclasses
import re
import signal
import time

from rich.console import Console
from rich.markup import escape

from launcher import remote, runs
from launcher.logs import LogPrinter

ROOT_CAUSE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank:\s*\d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")
START_TIMEOUT = 60.0
TEARDOWN_GRACE_MS = 1000  # a failed run: SIGKILL what SIGTERM has not ended after 1 s


@dataclasses.dataclass
class Failure:
    host: str
    when: float
    reason: str
    exit: int | None = None
    rank: int | None = None
    lines: list = dataclasses.field(default_factory=list)

    def describe(self) -> str:
        who = f"host {self.host}" + (f" rank {self.rank}" if self.rank is not None else "")
        code = f" exit code {self.exit}" if self.exit is not None else ""
        return f"{who}: {self.reason}{code}"


@dataclasses.dataclass
class Outcome:
    rc: int
    failure: Failure | None = None
    stopped: list | None = None   # HostResults of the teardown, when there was one
    seconds_to_teardown: float | None = None


class _Interrupted(Exception):
    pass


def _raise_interrupt(signum, frame):
    raise _Interrupted(signal.Signals(signum).name)


def follow(run: runs.Run, job: str, console: Console, *, fail_fast: bool = True, poll: float = 0.5,
           show: bool = True, host_filter: tuple = (), poll_timeout: float = 8.0,
           offsets: dict | None = None) -> Outcome:
    entry = run.job(job)
    hosts = {h.name: h for h in run.hosts()}
    names = [n for n in entry["hosts"] if not host_filter or n in host_filter]
    ts = {n: remote.target(hosts[n]) for n in entry["hosts"]}
    printer = LogPrinter(console, list(entry["hosts"]), show=show)
    offsets = {n: dict((offsets or {}).get(n, {})) for n in names}
    labels = {key: label for n in names for key, label, _ in runs.log_files(entry["hosts"][n], job)}
    started = time.monotonic()
    states: dict[str, runs.HostState] = {}
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in previous:
            signal.signal(s, _raise_interrupt)
    except ValueError:  # not the main thread: Ctrl-C is then the caller's business
        previous = {}
    try:
        while True:
            results = remote.fan_out([ts[n] for n in names], lambda t: runs.poll_host(
                t, entry["hosts"][t.name], job, offsets[t.name]), timeout=poll_timeout)
            now = time.time()
            failures = []
            for r in results:
                if not r.ok:
                    failures.append(Failure(r.host, now, f"host stopped answering ({r.error})"))
                    continue
                st = states[r.host] = r.value
                for key, (end, data) in st.chunks.items():
                    if data:
                        printer.feed(r.host, key, labels.get(key, ""), data)
                    offsets[r.host][key] = end
                if st.exit not in (None, 0):
                    failures.append(_exit_failure(st, entry["hosts"][r.host], printer))
                elif st.exit is None and not st.alive and (
                        st.pid is not None or time.monotonic() - started > START_TIMEOUT):
                    failures.append(Failure(r.host, now, "job vanished without an exit status"
                                            if not st.stopped else "job was stopped"))
            if failures and fail_fast:
                first = min(failures, key=lambda f: f.when)
                t0 = time.monotonic()
                stopped = runs.stop_run(run, ts={n: t for n, t in ts.items()}, grace_ms=TEARDOWN_GRACE_MS)
                took = time.monotonic() - t0
                _final_drain(names, ts, entry, job, offsets, printer, labels)
                first.lines = first.lines or _last_lines(printer, first.host, entry["hosts"][first.host])
                run.set_state(job, "failed", failure=first.describe())
                return Outcome(1, first, stopped, took)
            if names and all(states.get(n) and states[n].exit == 0 for n in names):
                printer.flush(labels)
                run.set_state(job, "succeeded")
                return Outcome(0)
            if failures and all(states.get(n) and (states[n].exit is not None) for n in names):
                printer.flush(labels)
                run.set_state(job, "failed", failure=failures[0].describe())
                return Outcome(1, min(failures, key=lambda f: f.when))
            time.sleep(poll)
    except (_Interrupted, KeyboardInterrupt) as e:
        if not fail_fast:  # only watching (logs --follow): stop watching, leave the run alone
            printer.flush(labels)
            return Outcome(130)
        t0 = time.monotonic()
        console.print(f"[yellow]interrupted ({e or 'SIGINT'}): stopping run {run.id} on every host[/]")
        stopped = runs.stop_run(run, ts={n: t for n, t in ts.items()}, grace_ms=TEARDOWN_GRACE_MS)
        took = time.monotonic() - t0
        run.set_state(job, "stopped")
        return Outcome(130, Failure("-", time.time(), "interrupted"), stopped, took)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        remote.close_all(ts.values())


def _exit_failure(st: runs.HostState, job_host: dict, printer: LogPrinter) -> Failure:
    f = Failure(st.host, st.exit_time or time.time(), "exited with", st.exit)
    host_log = "\n".join(printer.last_lines(st.host, "h", 80))
    m = ROOT_CAUSE.search(host_log)
    if m:
        f.rank, f.exit = int(m.group(1)), int(m.group(2))
        f.reason = "rank failed with"
        f.lines = printer.last_lines(st.host, f"r{f.rank}", 10)
    elif len(job_host.get("ranks", [])) == 1:
        f.rank = job_host["ranks"][0]
    if not f.lines:
        f.lines = _last_lines(printer, st.host, job_host)
    return f


def _last_lines(printer: LogPrinter, host: str, job_host: dict) -> list[str]:
    for rank in job_host.get("rank_logs", {}):
        lines = printer.last_lines(host, f"r{rank}", 10)
        if lines:
            return lines
    return printer.last_lines(host, "h", 10)


def _final_drain(names, ts, entry, job, offsets, printer, labels) -> None:
    """One last read of the logs after a teardown, so the report shows the final lines."""
    results = remote.fan_out([ts[n] for n in names], lambda t: runs.poll_host(
        t, entry["hosts"][t.name], job, offsets[t.name]), timeout=5)
    for r in results:
        if r.ok:
            for key, (end, data) in r.value.chunks.items():
                if data:
                    printer.feed(r.host, key, labels.get(key, ""), data)
    printer.flush(labels)


def report(console: Console, outcome: Outcome, run_id: str = "") -> None:
    f = outcome.failure
    if f is None:
        return
    if f.reason == "interrupted":
        console.print("[bold yellow]interrupted[/]")
    else:
        console.print(f"[bold red]run failed — earliest failure: {escape(f.describe())}[/]")
    for line in f.lines:
        console.print(f"    {line}", highlight=False, markup=False)
    if outcome.stopped is not None:
        took = f" in {outcome.seconds_to_teardown:.1f} s" if outcome.seconds_to_teardown else ""
        bad = [r.host for r in outcome.stopped if not r.ok]
        if not bad:
            console.print(f"stopped the run on every host{took}")
        else:
            good = [r.host for r in outcome.stopped if r.ok]
            console.print(f"stopped the run on {', '.join(good) or 'no host'}{took}; [red]could not confirm the "
                          f"stop on {', '.join(bad)}[/]: run `mae-launch stop{' ' + run_id if run_id else ''}` "
                          "when it answers again")
