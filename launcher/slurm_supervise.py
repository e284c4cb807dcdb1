"""Follow one Slurm job of a run from the submit host: its state (pending with reason, running on
which nodes, how it ended) and its logs, merged with `node rN |` prefixes (node names from the
allocation). With fail_fast (a foreground launch) Ctrl-C or SIGTERM cancels the job (scancel); with
fail_fast=False (`logs --follow`) they only end the watching.

Like launcher/supervise.py it works from the records it is given and the caller's open target, changes
the job's state through the record's methods and saves through the store it is given (if any).
"""
from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape

from launcher import slurmops
from launcher.logs import LogPrinter
from launcher.supervise import ROOT_CAUSE, Failure, Outcome, _Interrupted, _interruptible

UNKNOWN_LOOKS = 20  # Slurm knows nothing of the job and it left no exit status: lost


class Watch:
    """The printer and offsets of one Slurm job's logs, and what was last said about its state."""

    def __init__(self, console: Console, job, show: bool, offsets: dict | None = None):
        self.console, self.job = console, job
        self.printer = LogPrinter(console, ["node0"], show=show)
        self.offsets = dict(offsets or {})
        self.nodes: list = []
        self.said = ""
        self.exit_status = None

    def read(self, t, state: slurmops.SlurmState | None = None, tail_bytes: int = 0) -> None:
        if state is not None and state.nodes:
            self.nodes = state.nodes
        chunks, self.exit_status = slurmops.read_logs(t, self.job, self.nodes, self.offsets,
                                                      max_bytes=tail_bytes or 1 << 18, tail=bool(tail_bytes))
        files = {k: (host, label) for k, host, label, _ in slurmops.log_files(self.job, self.nodes)}
        for key, (end, data) in chunks.items():
            if data:
                self.printer.feed(files[key][0], key, files[key][1], data)
            self.offsets[key] = end

    def say(self, state: slurmops.SlurmState, run_id: str) -> None:
        where = f" on {','.join(state.nodes)}" if state.state == "running" and state.nodes else ""
        text = state.describe() + where
        if text != self.said:
            self.said = text
            self.console.print(f"[bold]slurm job {state.job_id}[/] ({self.job.job} of run {run_id}): {escape(text)}")

    def last_line(self) -> str:
        """The most recent line of the ranks' logs (rank 0 first), else of the node and batch logs."""
        files = slurmops.log_files(self.job, self.nodes)
        ordered = [f for f in files if f[0].startswith("r")] + [f for f in reversed(files) if not f[0].startswith("r")]
        return next((self.printer.last_lines(h, k, 1)[0] for k, h, _, _ in ordered
                     if self.printer.last_lines(h, k, 1)), "")

    def failure(self, state: slurmops.SlurmState) -> Failure:
        f = Failure("slurm", time.time(), f"Slurm job {state.job_id} {state.describe()}")
        for i in range(self.job.nodes):
            host = self.nodes[i] if i < len(self.nodes) else f"node{i}"
            m = ROOT_CAUSE.search("\n".join(self.printer.last_lines(host, f"n{i}", 80)))
            if m:
                f.host, f.rank, f.exit = host, int(m.group(1)), int(m.group(2))
                f.reason = f"rank failed (Slurm job {state.job_id} {state.state}) with"
                f.lines = self.printer.last_lines(host, f"r{f.rank}", 10)
                break
        first = self.nodes[0] if self.nodes else "node0"
        f.lines = f.lines or self.printer.last_lines(first, "b", 10)
        return f


def follow(run, job, t, console: Console, store=None, *, fail_fast: bool = True, poll: float = 1.0,
           show: bool = True, offsets: dict | None = None) -> Outcome:
    """Follow `job` (a Slurm JobRecord of `run`) through the submit host's target `t` until it ends."""
    w = Watch(console, job, show, offsets)
    with _interruptible():
        try:
            return _loop(run, job, t, w, store, poll)
        except (_Interrupted, KeyboardInterrupt) as e:
            w.printer.flush()
            if not fail_fast:
                return Outcome(130)
            console.print(f"[yellow]interrupted ({e or 'SIGINT'}): cancelling Slurm job "
                          f"{job.slurm_job_id} of run {run.id}[/]")
            t0 = time.monotonic()
            left = slurmops.cancel(t, [j.slurm_job_id for j in run.slurm_jobs()])
            for j in run.jobs:
                j.cancelled()
            _save(store, run)
            if left:
                console.print(f"[red]still queued: {' '.join(left)}[/]: run `mae-launch stop {run.id}`")
            return Outcome(130, Failure("-", time.time(), "interrupted"), None, time.monotonic() - t0)


def _save(store, run) -> None:
    if store is not None:
        store.save(run)


def _loop(run, job, t, w: Watch, store, poll: float) -> Outcome:
    unknown = 0
    while True:
        state = slurmops.query(t, [job.slurm_job_id])[job.slurm_job_id]
        w.read(t, state)
        state.settle(w.exit_status)
        unknown = unknown + 1 if state.state == "unknown" else 0
        if unknown >= UNKNOWN_LOOKS:
            state.state, state.slurm_state = "failed", "UNKNOWN"
        w.say(state, run.id)
        if state.final:
            time.sleep(min(poll, 0.5))
            w.read(t)  # the last lines written as the job ended
            w.printer.flush()
            f = None if state.state == "completed" else w.failure(state)
            job.slurm_seen(state.state, state.slurm_state, failure=f.describe() if f else None)
            _save(store, run)
            return Outcome(0) if f is None else Outcome(1, f)
        if state.state in ("pending", "running") and job.state != state.state:
            job.slurm_seen(state.state, state.slurm_state, state.reason)
            _save(store, run)
        time.sleep(poll)
