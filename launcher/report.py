"""What people read: the console, per-host result tables and failure sentences (rich).

The transport (launcher/remote.py) returns plain `HostResult`s; this module turns them into tables,
sentences and exit statuses. Nothing here touches a host.
"""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Callable

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table


def console() -> Console:
    """The console every command prints through (no syntax highlighting; long lines wrap softly)."""
    return Console(highlight=False, soft_wrap=True)


def exit_status(results: list) -> int:
    """0 when every host succeeded, else 1."""
    return 0 if all(r.ok for r in results) else 1


def summary_table(title: str, results: list, describe: Callable | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("host", style="bold", overflow="fold")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("detail", overflow="fold")
    for r in results:
        state = "[green]ok[/]" if r.ok else f"[red]{r.kind or 'failed'}[/]"
        detail = (describe(r) if describe else str(r.value or "")) if r.ok else r.error
        if not r.ok and r.tail:
            detail += "\n" + r.tail
        table.add_row(escape(r.host), state, f"{r.seconds:.1f}", escape(detail))
    return table


def failure_message(what: str, results: list) -> str:
    bad = [r for r in results if not r.ok]
    lines = [f"{what} failed on {len(bad)} of {len(results)} host(s): " + ", ".join(r.host for r in bad)]
    for r in bad:
        lines.append(f"--- {r.host}: {r.error}")
        if r.tail:
            lines.extend("    " + line for line in r.tail.splitlines())
    return "\n".join(lines)


def print_results(con: Console, title: str, what: str, results: list, describe: Callable | None = None) -> int:
    """The per-host table, then the failure sentence when a host failed; returns the exit status."""
    con.print(summary_table(title, results, describe))
    if not all(r.ok for r in results):
        con.print(failure_message(what, results), markup=False, style="red")
    return exit_status(results)


def ranks_text(ranks) -> str:
    """Ranks for people: `0-7` for a contiguous run of more than two, else `0,3`."""
    ranks = list(ranks)
    if len(ranks) > 2 and ranks == list(range(ranks[0], ranks[-1] + 1)):
        return f"{ranks[0]}-{ranks[-1]}"
    return ",".join(map(str, ranks))


def print_failure(con: Console, outcome, run_id: str = "") -> None:
    """The end of a failed or interrupted follow: earliest failure, its last lines, the teardown."""
    f = outcome.failure
    if f is None:
        return
    if f.reason == "interrupted":
        con.print("[bold yellow]interrupted[/]")
    else:
        con.print(f"[bold red]run failed — earliest failure: {escape(f.describe())}[/]")
    for line in f.lines:
        con.print(f"    {line}", highlight=False, markup=False)
    if f.rank is not None and run_id:
        con.print(f"(the rank's whole log: mae-launch logs {run_id} --host {f.host} --rank {f.rank} -n 200)",
                  highlight=False, markup=False)
    if outcome.stopped is None:
        return
    took = f" in {outcome.seconds_to_teardown:.1f} s" if outcome.seconds_to_teardown else ""
    bad = [r.host for r in outcome.stopped if not r.ok]
    if not bad:
        con.print(f"stopped the run on every host{took}")
        return
    good = [r.host for r in outcome.stopped if r.ok]
    con.print(f"stopped the run on {', '.join(good) or 'no host'}{took}; [red]could not confirm the "
              f"stop on {', '.join(bad)}[/]: run `mae-launch stop{' ' + run_id if run_id else ''}` "
              "when it answers again")


class Progress:
    """Live per-host phase table (rich); plain when not on a terminal."""

    def __init__(self, hosts, console: Console, title: str = "deploy"):
        self.title = title
        self.state = {h.name: ("waiting", time.monotonic()) for h in hosts}
        self.start = {h.name: time.monotonic() for h in hosts}
        self.lock = threading.Lock()
        self.console = console

    def set(self, host: str, phase: str) -> None:
        with self.lock:
            self.state[host] = (phase, time.monotonic())

    def __rich__(self) -> Table:
        table = Table(title=self.title, title_justify="left")
        table.add_column("host", style="bold")
        table.add_column("phase")
        table.add_column("s", justify="right")
        with self.lock:
            for name, (phase, _) in self.state.items():
                colour = "green" if phase in ("done", "unchanged") else "red" if phase.startswith("failed") else "yellow"
                table.add_row(name, f"[{colour}]{phase}[/]", f"{time.monotonic() - self.start[name]:.1f}")
        return table


@contextlib.contextmanager
def live(progress, console: Console):
    """Show `progress` live while the block runs; off a terminal its last state is printed once and
    ended with a newline (rich leaves the cursor after it, gluing the next title to the table)."""
    with Live(progress, console=console, refresh_per_second=4, transient=False):
        yield
    if not console.is_terminal:
        console.line()

