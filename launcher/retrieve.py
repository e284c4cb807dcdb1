"""Retrieve a run's files and look at them: copy them back (`fetch`), open TensorBoard on them.

`fetch_run` copies outputs and logs host by host (all hosts at once, a live table of bytes and
percent per transfer); `tensorboard_argv` is the command that shows the fetched event files.
"""
from __future__ import annotations

import concurrent.futures as cf
import pathlib
import shlex
import sys
import threading
import time

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from launcher import fetch, remote, report
from launcher.errors import UserError
from launcher.runs import RunStore


class TransferProgress:
    """Live table: one line per transfer (host, what, bytes, percent, state)."""

    def __init__(self, transfers: list[fetch.Transfer]):
        self.rows = {i: [t.host.name, t.what, 0, 0, "waiting"] for i, t in enumerate(transfers)}
        self.lock = threading.Lock()

    def update(self, i: int, done: int | None = None, percent: int | None = None, state: str | None = None):
        with self.lock:
            row = self.rows[i]
            if done is not None:
                row[2], row[3] = done, percent
            if state is not None:
                row[4] = state

    def __rich__(self) -> Table:
        table = Table(title="fetch", title_justify="left")
        for col in ("host", "what", "bytes", "%", "state"):
            table.add_column(col, no_wrap=col == "host", justify="right" if col in ("bytes", "%") else "left")
        with self.lock:
            for host, what, done, percent, state in self.rows.values():
                colour = "green" if state == "done" else "red" if state.startswith("failed") else "yellow"
                table.add_row(host, what, f"{done:,}", str(percent), f"[{colour}]{escape(state)}[/]")
        return table


def run_transfers(transfers: list[fetch.Transfer], console: Console, limit: int = remote.DEFAULT_LIMIT,
                  bwlimit: int | None = None) -> list[remote.HostResult]:
    """Every transfer at once (up to `limit`), with live progress; one HostResult per transfer, in order."""
    progress = TransferProgress(transfers)

    def one(i: int, t: fetch.Transfer) -> remote.HostResult:
        progress.update(i, state="copying")
        start = time.monotonic()
        try:
            summary = fetch.pull(t, lambda _h, done, pct: progress.update(i, done, pct), bwlimit=bwlimit)
        except remote.RemoteError as e:
            progress.update(i, state=f"failed: {e.kind}")
            return remote.HostResult(t.host.name, False, None, e.message, e.kind, e.tail, time.monotonic() - start)
        progress.update(i, state="done")
        return remote.HostResult(t.host.name, True, summary, seconds=time.monotonic() - start)

    with report.live(progress, console):
        with cf.ThreadPoolExecutor(max_workers=max(1, min(limit, len(transfers)))) as pool:
            return list(pool.map(one, range(len(transfers)), transfers))


def fetch_run(run_id: str | None, job_name: str | None, to: str | None, *, all_hosts: bool, checkpoints: bool,
              console: Console, events_only: bool = False, bwlimit: int | None = None,
              store: RunStore | None = None) -> tuple[pathlib.Path, list[remote.HostResult]]:
    """Copy a run's files back into `to` (default runs/<id>/); (destination, one result per transfer)."""
    store = store or RunStore()
    run = store.load(run_id)
    jobs = [run.job(job_name)] if job_name else list(run.jobs)
    if not jobs:
        raise UserError(f"run {run.id} has no job started: nothing to fetch")
    dest = pathlib.Path(to).expanduser() if to else store.dir(run.id)
    transfers = fetch.plan(run, jobs, dest, all_hosts=all_hosts, checkpoints=checkpoints,
                           events_only=events_only)
    started = time.monotonic()
    results = run_transfers(transfers, console, bwlimit=bwlimit)
    console.print(f"fetched into {dest} in {time.monotonic() - started:.1f} s", soft_wrap=True)
    return dest, results


def tensorboard_argv(logdir: pathlib.Path, port: int | None = None, host: str | None = None) -> list[str]:
    argv = [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
    if port:
        argv += ["--port", str(port)]
    if host:
        argv += ["--host", host]
    return argv


def shell_line(argv: list[str]) -> str:
    return shlex.join(argv)
