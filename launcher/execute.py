"""`mae-launch exec`: one command on every chosen host, output merged with `host |` prefixes.

Each host runs templates/exec.sh.j2: in its workdir, with the inventory's venv active (unless
`venv=False`), stderr merged into stdout, killed on the host after `timeout` seconds (exit 124).
A host's output is printed as soon as that host is done; the result per host is its exit status.
"""
from __future__ import annotations

import threading

from rich.console import Console
from rich.markup import escape

from launcher import layout, remote
from launcher.logs import LogPrinter

#: extra seconds the connection waits beyond the command's own timeout (the host kills it first)
GRACE = 15


def run_everywhere(inv, hosts: list, argv: list[str], *, venv: bool = True, timeout: float | None = None,
                   console: Console, limit: int = remote.DEFAULT_LIMIT) -> list[remote.HostResult]:
    """Run `argv` on `hosts`; HostResult.value = exit status (ok only when 0)."""
    printer = LogPrinter(console, [h.name for h in hosts])
    lock = threading.Lock()
    ts = remote.targets(hosts)

    def one(t):
        done = t.run_template("exec.sh.j2", timeout=None if timeout is None else timeout + GRACE, check=False,
                              workdir=t.host.workdir, argv=list(argv), seconds=timeout,
                              venv=inv.host_path(t.host, inv.paths.venv) if venv else None)
        with lock:
            printer.feed(t.name, "o", "", (done.stdout + done.stderr).encode())
            printer.flush()
        if done.rc != 0:
            late = f" (timed out after {timeout:g} s)" if timeout and done.rc == 124 else ""
            raise remote.RemoteError(t.name, "failed", f"exit status {done.rc}{late}")
        return 0

    try:
        return remote.fan_out(ts, one, limit=limit, timeout=None if timeout is None else timeout + 2 * GRACE)
    finally:
        remote.close_all(ts)


def exit_code(r: remote.HostResult) -> str:
    if r.ok:
        return "0"
    if r.error.startswith("exit status "):
        return r.error.split()[2]
    return r.kind or "failed"


def exit_grid(results: list[remote.HostResult]) -> layout.Grid:
    grid = layout.Grid("exec", ["host", "exit", "seconds", "detail"])
    for r in results:
        colour = "green" if r.ok else "red"
        detail = "" if r.ok else r.error.partition(" (")[2].rstrip(")") if r.error.startswith("exit status ") \
            else r.error
        grid.add(escape(r.host), f"[{colour}]{escape(exit_code(r))}[/]", f"{r.seconds:.1f}", escape(detail))
    return grid
