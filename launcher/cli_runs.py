"""`mae-launch runs | status | logs | stop`: look at and control recorded runs."""
import sys

import click
from rich.markup import escape
from rich.table import Table

from launcher import control, options, report
from launcher.logs import LogPrinter
from launcher.runs import RunStore

RUN_ARG = click.argument("run_id", metavar="[RUN]", required=False)
JOB_OPT = click.option("--job", default=None, metavar="JOB", help="Which job of the run (default: the last started).")


@click.command(name="runs")
def runs_command():
    """List recorded runs (newest last) with their jobs and states."""
    store = RunStore()
    table = Table(title=f"runs in {store.root}", title_justify="left")
    for col in ("run", "created", "inventory", "jobs", "git"):
        table.add_column(col, overflow="fold")
    for run_id in store.list_ids():
        run = store.load(run_id)
        table.add_row(run.id, run.created, escape(run.inventory), escape(run.summary()), run.git[:12])
    report.console().print(table)


def _feed(printer: LogPrinter, host: str, job, st) -> dict:
    """Feed a host's log tails to the printer; the end offsets (file key -> offset)."""
    labels = job.hosts[host].labels()
    for key, (_, data) in st.chunks.items():
        printer.feed(host, key, labels[key], data)
    printer.flush(labels)
    return {key: end for key, (end, _) in st.chunks.items()}


@click.command()
@RUN_ARG
@JOB_OPT
def status(run_id, job):
    """Per host: running / exited N / stopped / lost, and the last log line. RUN defaults to the latest."""
    run, rec, results = control.tail(run_id, job, 4096)
    printer = LogPrinter(report.console(), list(rec.hosts), show=False)
    table = Table(title=f"run {run.id}: {rec.job} ({rec.state})", title_justify="left")
    for col in ("host", "ranks", "pgid", "state", "last log line"):
        table.add_column(col, overflow="fold")
    for r in results:
        h = rec.hosts[r.host]
        if not r.ok:
            table.add_row(r.host, report.ranks_text(h.ranks), str(h.pgid), f"[red]lost ({r.kind})[/]", escape(r.error))
            continue
        _feed(printer, r.host, rec, r.value)
        colour = "green" if r.value.state in ("running", "exited 0") else "red"
        table.add_row(r.host, report.ranks_text(h.ranks), str(h.pgid), f"[{colour}]{r.value.state}[/]",
                      escape(printer.last_line(r.host)))
    report.console().print(table)
    sys.exit(report.exit_status(results))


@click.command()
@RUN_ARG
@JOB_OPT
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends on every host.")
@click.option("--host", "host_names", multiple=True, metavar="HOST", help="Only this host (repeatable).")
@click.option("--lines", "-n", default=20, show_default=True, type=click.IntRange(0, 100000),
              help="Lines of each log to show first.")
def logs(run_id, job, follow, host_names, lines):
    """Merged logs of a run from every host, each line prefixed by host and rank, coloured per host.

    Example: mae-launch logs --follow --host host1
    """
    con = report.console()
    run, rec, results = control.tail(run_id, job, max(4096, lines * 400))
    printer = LogPrinter(con, list(rec.hosts), show=False)
    offsets = {}
    for r in results:
        if host_names and r.host not in host_names:
            continue
        if not r.ok:
            con.print(f"[red]{r.host}: {escape(r.error)}[/]")
            continue
        offsets[r.host] = _feed(printer, r.host, rec, r.value)
        labels = rec.hosts[r.host].labels()
        for key in r.value.chunks:
            for line in printer.last_lines(r.host, key, lines):
                con.print(printer.prefix(r.host, labels[key]) + line, soft_wrap=True)
    if not follow:
        sys.exit(report.exit_status(results))
    sys.exit(control.watch(con, run, rec, tuple(host_names), offsets))


@click.command()
@RUN_ARG
@click.option("--grace", default=2.0, show_default=True, type=options.Seconds(0, 3600),
              help="Seconds between SIGTERM and SIGKILL.")
def stop(run_id, grace):
    """Stop a run on every host: exactly its process groups (SIGTERM, then SIGKILL after --grace),
    then confirm nothing of it is left. RUN defaults to the latest."""
    run, results = control.stop(run_id, grace)
    sys.exit(report.print_results(report.console(), f"stop {run.id}", "stop", results, lambda r: (
        f"SIGTERM {r.value['term'] or '-'}; SIGKILL {r.value['kill'] or '-'}; nothing left")))
