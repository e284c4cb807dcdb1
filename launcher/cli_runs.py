"""`mae-launch runs | status | logs | stop`: look at and control recorded runs."""
import json
import sys

import click
from rich.markup import escape

from launcher import clean as clean_mod
from launcher import cli_slurm, control, layout, options, report
from launcher.errors import UserError
from launcher.logs import LogPrinter
from launcher.runs import RunStore, to_json

RUN_ARG = click.argument("run_id", metavar="[RUN]", required=False)
JOB_OPT = click.option("--job", default=None, metavar="JOB", help="Which job of the run (default: the last started).")


JSON_OPT = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")


@click.command(name="runs")
@JSON_OPT
def runs_command(as_json):
    """List recorded runs (newest last) with their jobs and states."""
    store = RunStore()
    records = [store.load(run_id) for run_id in store.list_ids()]
    if as_json:
        click.echo(json.dumps([to_json(run) for run in records], indent=1))
        return
    grid = layout.Grid(f"runs in {store.root}", ["run", "created", "inventory", "jobs", "git"])
    for run in records:
        grid.add(escape(run.id), run.created, escape(run.inventory), escape(run.summary()), run.git[:12])
    layout.show(report.console(), grid)


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
@JSON_OPT
def status(run_id, job, as_json):
    """Per host: running / exited N / stopped / lost, and the last log line. RUN defaults to the latest.
    Slurm runs: per job its Slurm job id and state (pending with reason, running, completed, ...)."""
    if (slurm := cli_slurm.slurm_run(run_id)) is not None:
        sys.exit(cli_slurm.status(slurm, job))
    run, rec, results = control.tail(run_id, job, 4096)
    rows = _status_rows(rec, results)
    if as_json:
        click.echo(json.dumps({"run": run.id, "job": rec.job, "state": rec.state, "hosts": rows}, indent=1))
        sys.exit(report.exit_status(results))
    grid = layout.Grid(f"run {run.id}: {rec.job} ({rec.state})", ["host", "ranks", "pgid", "state", "last log line"])
    for row in rows:
        colour = "green" if row["state"] in ("running", "exited 0") else "red"
        grid.add(escape(row["host"]), report.ranks_text(row["ranks"]), str(row["pgid"]),
                 f"[{colour}]{escape(row['state'])}[/]", escape(row["error"] or row["last_line"]))
    layout.show(report.console(), grid)
    sys.exit(report.exit_status(results))


def _status_rows(rec, results) -> list[dict]:
    """One record per host: host, ranks, pgid, state, exit, last_line, error."""
    printer = LogPrinter(report.console(), list(rec.hosts), show=False)
    rows = []
    for r in results:
        h = rec.hosts[r.host]
        row = {"host": r.host, "ranks": list(h.ranks), "pgid": h.pgid, "state": f"lost ({r.kind})", "exit": None,
               "last_line": "", "error": "" if r.ok else r.error}
        if r.ok:
            _feed(printer, r.host, rec, r.value)
            row.update(state=r.value.state, exit=r.value.exit, last_line=printer.last_line(r.host))
        rows.append(row)
    return rows


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
    if (slurm := cli_slurm.slurm_run(run_id)) is not None:
        sys.exit(cli_slurm.logs(slurm, job, follow, lines))
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
    then confirm nothing of it is left. RUN defaults to the latest. Slurm runs: scancel."""
    if (slurm := cli_slurm.slurm_run(run_id)) is not None:
        sys.exit(cli_slurm.stop(slurm))
    run, results = control.stop(run_id, grace)
    sys.exit(report.print_results(report.console(), f"stop {run.id}", "stop", results, lambda r: (
        f"SIGTERM {r.value['term'] or '-'}; SIGKILL {r.value['kill'] or '-'}; nothing left")))


@click.command()
@click.argument("run_ids", metavar="[RUN]...", nargs=-1)
@click.option("--older-than", "age", default=None, metavar="AGE", help="Every run created more than AGE ago (7d, 12h, 2w).")
@click.option("--outputs", is_flag=True, help="Remove the runs' outputs (checkpoints, metrics) on the hosts too, "
              "after listing them.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before removing outputs.")
def clean(run_ids, age, outputs, yes):
    """Remove finished runs: the record here and the run directories on the hosts (job scripts and
    logs); with --outputs their output folders too. A run with a live process is never touched.

    Example: mae-launch clean --older-than 7d
    """
    if bool(run_ids) == bool(age):
        raise UserError("name the runs to clean, or pass --older-than AGE (not both)")
    ids = list(run_ids) if run_ids else clean_mod.older_than(RunStore(), clean_mod.parse_age(age))
    con = report.console()
    if not ids:
        con.print(f"no run older than {age}")
        sys.exit(0)

    def confirm(listing: str) -> bool:
        con.print(listing, markup=False)
        if yes:
            return True
        if not sys.stdin.isatty():
            raise UserError("--outputs removes the files listed above: pass --yes to confirm")
        return click.confirm("remove them?", default=False)

    sys.exit(control.clean(con, ids, outputs, confirm))
