"""`mae-launch runs | status | logs | stop`: look at and control recorded runs."""
from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from launcher import remote, runs, supervise
from launcher.cli import main
from launcher.logs import LogPrinter

RUN_ARG = click.argument("run_id", metavar="[RUN]", required=False)
JOB_OPT = click.option("--job", default=None, metavar="JOB", help="Which job of the run (default: the last started).")


@main.command(name="runs")
def runs_command():
    """List recorded runs (newest last) with their jobs and states."""
    console = Console(highlight=False, soft_wrap=True)
    table = Table(title=f"runs in {runs.runs_root()}", title_justify="left")
    for col in ("run", "created", "inventory", "jobs", "git"):
        table.add_column(col)
    for run_id in runs.list_ids():
        run = runs.Run.load(run_id)
        jobs = ", ".join(f"{j['job']}: {j.get('state', '?')}" for j in run.data["jobs"]) or "-"
        table.add_row(run.id, run.data.get("created", ""), escape(run.data.get("inventory", "")), escape(jobs),
                      run.data.get("git", "")[:12])
    console.print(table)


def _poll_all(run, job, max_bytes=1 << 16, tail=True):
    entry = run.job(job)
    hosts = {h.name: h for h in run.hosts()}
    ts = [remote.target(hosts[n]) for n in entry["hosts"]]

    def one(t):
        offsets = {}
        if tail:  # ask for sizes first by polling with a huge offset, then read the last max_bytes
            probe = runs.poll_host(t, entry["hosts"][t.name], entry["job"], {k: 1 << 62 for k, _, _ in
                                                                            runs.log_files(entry["hosts"][t.name], entry["job"])})
            offsets = {k: max(0, end - max_bytes) for k, (end, _) in probe.chunks.items()}
        return runs.poll_host(t, entry["hosts"][t.name], entry["job"], offsets, max_bytes=max_bytes), offsets

    try:
        return entry, remote.fan_out(ts, one, timeout=60)
    finally:
        remote.close_all(ts)


@main.command()
@RUN_ARG
@JOB_OPT
def status(run_id, job):
    """Per host: running / exited N / stopped / lost, and the last log line. RUN defaults to the latest."""
    console = Console(highlight=False, soft_wrap=True)
    run = runs.Run.load(run_id)
    entry, results = _poll_all(run, job, max_bytes=4096)
    printer = LogPrinter(console, list(entry["hosts"]), show=False)
    table = Table(title=f"run {run.id}: {entry['job']} ({entry.get('state', '?')})", title_justify="left")
    for col in ("host", "ranks", "pgid", "state", "last log line"):
        table.add_column(col, overflow="fold")
    for r in results:
        h = entry["hosts"][r.host]
        if not r.ok:
            table.add_row(r.host, _ranks(h), str(h.get("pgid")), f"[red]lost ({r.kind})[/]", escape(r.error))
            continue
        st, _ = r.value
        for key, (_, data) in st.chunks.items():
            printer.feed(r.host, key, "", data)
        printer.flush()
        colour = "green" if st.state in ("running", "exited 0") else "red"
        table.add_row(r.host, _ranks(h), str(h.get("pgid")), f"[{colour}]{st.state}[/]", escape(printer.last_line(r.host)))
    console.print(table)
    sys.exit(0 if all(r.ok for r in results) else 1)


def _ranks(h) -> str:
    return ",".join(map(str, h.get("ranks", [])))


@main.command()
@RUN_ARG
@JOB_OPT
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends on every host.")
@click.option("--host", "host_names", multiple=True, metavar="HOST", help="Only this host (repeatable).")
@click.option("--lines", "-n", default=20, show_default=True, help="Lines of each log to show first.")
def logs(run_id, job, follow, host_names, lines):
    """Merged logs of a run from every host, each line prefixed by host and rank, coloured per host.

    Example: mae-launch logs --follow --host host1
    """
    console = Console(highlight=False, soft_wrap=True)
    run = runs.Run.load(run_id)
    entry, results = _poll_all(run, job, max_bytes=max(4096, lines * 400))
    printer = LogPrinter(console, list(entry["hosts"]), show=False)
    offsets = {}
    for r in results:
        if host_names and r.host not in host_names:
            continue
        if not r.ok:
            console.print(f"[red]{r.host}: {escape(r.error)}[/]")
            continue
        st, start = r.value
        labels = {k: lab for k, lab, _ in runs.log_files(entry["hosts"][r.host], entry["job"])}
        offsets[r.host] = {}
        for key, (end, data) in st.chunks.items():
            printer.feed(r.host, key, labels[key], data)
            offsets[r.host][key] = end
        printer.flush(labels)
        for key in st.chunks:
            lines_ = printer.last_lines(r.host, key, lines)
            for line in lines_:
                console.print(printer.prefix(r.host, labels[key]) + line, soft_wrap=True)
    if not follow:
        sys.exit(0 if all(r.ok for r in results) else 1)
    outcome = supervise.follow(run, entry["job"], console, fail_fast=False, host_filter=tuple(host_names),
                               offsets=offsets)
    sys.exit(0 if outcome.rc in (0, 1) else outcome.rc)


@main.command()
@RUN_ARG
@click.option("--grace", default=2.0, show_default=True, help="Seconds between SIGTERM and SIGKILL.")
def stop(run_id, grace):
    """Stop a run on every host: exactly its process groups (SIGTERM, then SIGKILL after --grace),
    then confirm nothing of it is left. RUN defaults to the latest."""
    console = Console(highlight=False, soft_wrap=True)
    run = runs.Run.load(run_id)
    results = runs.stop_run(run, grace_ms=int(grace * 1000))
    console.print(remote.summary_table(f"stop {run.id}", results, lambda r: (
        f"SIGTERM {r.value['term'] or '-'}; SIGKILL {r.value['kill'] or '-'}; nothing left")))
    for j in run.data["jobs"]:
        if j.get("state") in ("running", "starting"):
            j["state"] = "stopped"
    run.save()
    if not all(r.ok for r in results):
        console.print(remote.failure_message("stop", results), markup=False)
    sys.exit(remote.exit_status(results))
