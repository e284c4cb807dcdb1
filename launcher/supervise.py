"""Follow a running job on all its hosts; fail fast.

Every `poll` seconds each host is asked (one command over its open connection) for its job state and
the new bytes of its logs, which are printed merged. A host that does not answer is asked again at the
next poll (reconnecting), with one warning line; only when it has stayed unreachable for its
`host_timeout` (inventory key, default 60 s) is it counted as failed, so a blip (a laptop asleep, a VPN
reconnecting) never ends a run. If any host's job exits non-zero, disappears
without an exit status, or the host stays unreachable, every host's process groups of the run are
stopped at once (SIGTERM, SIGKILL after a grace period) and the earliest failure is reported: host,
rank, exit code and the last lines of its log. Ctrl-C (SIGINT) and SIGTERM do the same teardown.
With fail_fast=False (`logs --follow`) nothing is stopped: Ctrl-C only ends the watching.
A rendezvous that does not form fails fast too: when a `rendezvous_timeout` is given (multi-host
torchrun jobs) and no host has started its ranks by then (a rank log exists only once torchrun's
rendezvous completed; or the job's first progress line), the run is stopped everywhere and the hosts
that never joined are named with the last lines of their logs.

It works from the records it is given (the run, the job) and the caller's open targets; it changes
the job's state through the record's methods and saves through the store it is given.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
import signal
import time

from rich.console import Console
from rich.markup import escape

from launcher import hostops
from launcher.logs import LogPrinter

JOINED = re.compile(rb"Rendezvous complete|Epoch: \[\d+\]")   # torchrun's log; the first progress line
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


@contextlib.contextmanager
def _interruptible():
    """SIGINT and SIGTERM raise _Interrupted inside the block (main thread only)."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for s in previous:
            signal.signal(s, _raise_interrupt)
    except ValueError:  # not the main thread: Ctrl-C is then the caller's business
        previous = {}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


class _Watch:
    """The state of following one job: printer, offsets, last states."""

    def __init__(self, job, ts: dict, console: Console, show: bool, host_filter, offsets, poll_timeout,
                 host_timeouts: dict):
        self.job, self.ts, self.poll_timeout, self.console = job, ts, poll_timeout, console
        self.host_timeouts = host_timeouts
        self.lost_since: dict = {}  # host -> monotonic time it stopped answering
        self.names = [n for n in job.hosts if not host_filter or n in host_filter]
        self.keys = host_filter if isinstance(host_filter, dict) else None  # host -> the log keys shown
        self.printer = LogPrinter(console, list(job.hosts), show=show, fold=True)
        self.offsets = {n: dict((offsets or {}).get(n, {})) for n in self.names}
        self.labels = {k: v for n in self.names for k, v in job.hosts[n].labels().items()}
        self.states: dict = {}
        self.started = time.monotonic()
        self.joined: set = set()   # hosts whose ranks have started (the rendezvous formed there)

    def feed(self, host: str, st) -> None:
        for key, (end, data) in st.chunks.items():
            if key.startswith("r") or JOINED.search(data):
                self.joined.add(host)
            if data and (self.keys is None or key in self.keys[host]):
                self.printer.feed(host, key, self.labels.get(key, ""), data)
            self.offsets[host][key] = end

    def poll_once(self, timeout: float | None = None) -> list:
        """One look at every host; the failures it saw."""
        results = hostops.poll_job(self.job, self.ts, self.names, self.offsets,
                                   timeout=timeout or self.poll_timeout)
        now, failures = time.time(), []
        for r in results:
            if not r.ok:
                failure = self.unreachable(r)
                if failure is not None:
                    failures.append(failure)
                continue
            if r.host in self.lost_since:
                gone = time.monotonic() - self.lost_since.pop(r.host)
                self.console.print(f"[green]host {r.host} answers again (unreachable for {gone:.0f} s)[/]")
            st = self.states[r.host] = r.value
            self.feed(r.host, st)
            if st.state == "stopped":
                failures.append(Failure(r.host, now, "job was stopped"))
            elif st.exit not in (None, 0):
                failures.append(self.exit_failure(st))
            elif st.exit is None and not st.alive and (
                    st.pid is not None or time.monotonic() - self.started > START_TIMEOUT):
                failures.append(Failure(r.host, now, "job vanished without an exit status"))
        return failures

    def unreachable(self, r) -> Failure | None:
        """A poll that failed: a warning while the host is within its host_timeout, then a Failure."""
        limit = self.host_timeouts.get(r.host, 60.0)
        first = r.host not in self.lost_since
        since = self.lost_since.setdefault(r.host, time.monotonic())
        gone = time.monotonic() - since
        if gone >= limit:
            return Failure(r.host, time.time(), f"host stopped answering for {gone:.0f} s ({r.error})")
        if first:
            self.console.print(f"[yellow]warning: host {r.host} is not answering ({escape(r.error)}); retrying, the "
                               f"run is stopped if it stays unreachable for {limit:g} s[/]", highlight=False)
        return None

    def all_exited(self, code=None) -> bool:
        """Has the job ended on every host (with exit status `code`, when given)?"""
        ends = [self.states[n].end if n in self.states else None for n in self.names]
        return bool(ends) and all(e is not None and (code is None or e == code) for e in ends)

    def exit_failure(self, st) -> Failure:
        f = Failure(st.host, st.exit_time or time.time(), "exited with", st.exit)
        m = ROOT_CAUSE.search("\n".join(self.printer.last_lines(st.host, "h", 80)))
        ranks = self.job.hosts[st.host].ranks
        if m:
            f.rank, f.exit = int(m.group(1)), int(m.group(2))
            f.reason = "rank failed with"
            f.lines = self.printer.last_lines(st.host, f"r{f.rank}", 10)
        elif len(ranks) == 1:
            f.rank = ranks[0]
        f.lines = f.lines or self.last_lines(st.host)
        return f

    def rendezvous_failure(self, timeout: float | None) -> Failure | None:
        """A Failure when no host has started its ranks within `timeout` seconds of following."""
        if timeout is None or self.joined or time.monotonic() - self.started < timeout:
            return None
        never = [n for n in self.names if n not in self.joined]
        lines = [f"{n}: {line}" for n in never for line in (self.last_lines(n)[-4:] or ["(nothing in its log)"])]
        return Failure(", ".join(never), time.time(), f"the rendezvous did not form within {timeout:g} s "
                       "(network.rendezvous_timeout); never joined", lines=lines)

    def last_lines(self, host: str) -> list:
        for rank in self.job.hosts[host].rank_logs:
            lines = self.printer.last_lines(host, f"r{rank}", 10)
            if lines:
                return lines
        return self.printer.last_lines(host, "h", 10)


def follow(run, job, ts: dict, console: Console, store=None, *, fail_fast: bool = True, poll: float = 0.5,
           show: bool = True, host_filter: tuple = (), poll_timeout: float = 8.0,
           offsets: dict | None = None, rendezvous_timeout: float | None = None) -> Outcome:
    """Follow `job` (a JobRecord of `run`) until it ends on every host; `ts`: name -> Target for every
    host of the run; `host_filter`: only these hosts (a mapping: host -> the log keys to print). With a
    `store`, the job's end state is saved there. `rendezvous_timeout`: stop the run when no host has
    started its ranks by then."""
    w = _Watch(job, ts, console, show, host_filter, offsets, poll_timeout,
               {n: getattr(run.host(n), "host_timeout", 60.0) for n in job.hosts})
    with _interruptible():
        try:
            while True:
                failures = w.poll_once()
                stalled = w.rendezvous_failure(rendezvous_timeout) if fail_fast else None
                if stalled is not None and not failures:
                    failures = [stalled]
                if failures and fail_fast:
                    return _teardown(run, w, min(failures, key=lambda f: f.when), store)
                if w.all_exited(0):
                    w.printer.flush(w.labels)
                    _save(store, run, job.succeeded)
                    return Outcome(0)
                if failures and w.all_exited():
                    w.printer.flush(w.labels)
                    first = min(failures, key=lambda f: f.when)
                    _save(store, run, lambda: job.failed(first.describe()))
                    return Outcome(1, first)
                time.sleep(poll)
        except (_Interrupted, KeyboardInterrupt) as e:
            if not fail_fast:  # only watching (logs --follow): stop watching, leave the run alone
                w.printer.flush(w.labels)
                return Outcome(130)
            console.print(f"[yellow]interrupted ({e or 'SIGINT'}): stopping run {run.id} on every host[/]")
            job.stop_asked()
            t0 = time.monotonic()
            stopped = hostops.stop_run(run, ts, grace_ms=TEARDOWN_GRACE_MS)
            took = time.monotonic() - t0
            _save(store, run, job.stopped)
            return Outcome(130, Failure("-", time.time(), "interrupted"), stopped, took)


def _save(store, run, change) -> None:
    change()
    if store is not None:
        store.save(run)


def _teardown(run, w: _Watch, first: Failure, store) -> Outcome:
    t0 = time.monotonic()
    stopped = hostops.stop_run(run, w.ts, grace_ms=TEARDOWN_GRACE_MS)
    took = time.monotonic() - t0
    with contextlib.suppress(Exception):  # one last read so the report shows the final lines
        for r in hostops.poll_job(w.job, w.ts, w.names, w.offsets, timeout=5):
            if r.ok:
                w.feed(r.host, r.value)
    w.printer.flush(w.labels)
    first.lines = first.lines or w.last_lines(first.host)
    _save(store, run, lambda: w.job.failed(first.describe()))
    return Outcome(1, first, stopped, took)
