"""`mae-launch runs | status | logs | stop`: look at and control recorded runs."""
import json
import sys

import click
from rich.markup import escape

from launcher import clean as clean_mod
from launcher import cli_slurm, control, layout, options, report
from launcher.completion import complete_host, complete_job, complete_run
from launcher.errors import UserError
from launcher.logs import LogPrinter
from launcher.runs import RunStore, to_json

RUN_ARG = click.argument("run_id", metavar="[RUN]", required=False, shell_complete=complete_run)
JOB_OPT = click.option("--job", default=None, metavar="JOB", shell_complete=complete_job, help="Which job of the run (default: the last started).")


JSON_OPT = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")


@click.command(name="runs")
@JSON_OPT
def runs_command(as_json):
    """List recorded runs (newest last) with their jobs and states. A job still recorded as running is
    asked for first: one that has ended since is recorded as such (succeeded, failed, stopped)."""
    store = RunStore()
    records = [store.load(run_id) for run_id in store.list_ids()]
    control.refresh(store, records)
    if as_json:
        click.echo(json.dumps([_run_json(run) for run in records], indent=1))
        return
    grid = layout.Grid(f"runs in {store.root}", ["run", "created", "inventory", "jobs", "git"])
    for run in records:
        grid.add(escape(run.id), run.created, escape(run.inventory), escape(run.summary()), run.git[:12])
    layout.show(report.console(), grid)


def _run_json(run) -> dict:
    """A run record as --json shows it: the run id under "run", as in every --json of mae-launch."""
    data = to_json(run)
    return {"run": data.pop("id"), **data}


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
    """Per host: running / exited N / stopped / unreachable (last seen ...) / lost, and the last log line.
    RUN defaults to the latest. A job that has ended since it was last looked at is recorded as
    succeeded, failed or stopped (and its launch lock given back). Slurm runs: per job its Slurm job
    id and state (pending with reason, running, completed, ...)."""
    if (slurm := cli_slurm.slurm_run(run_id)) is not None:
        sys.exit(cli_slurm.status(slurm, job))
    run, rec, results = control.tail(run_id, job, 4096)
    rows = _status_rows(run, rec, results)
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


def _status_rows(run, rec, results) -> list[dict]:
    """One record per host: host, ranks, pgid, state, exit, last_seen, last_line, error."""
    printer = LogPrinter(report.console(), list(rec.hosts), show=False)
    rows = []
    for r in results:
        h = rec.hosts[r.host]
        row = {"host": r.host, "ranks": list(h.ranks), "pgid": h.pgid, "state": "", "exit": None,
               "last_seen": h.last_seen, "last_line": "", "error": "" if r.ok else r.error}
        if not r.ok:
            row["state"] = control.unanswered(run, rec, r.host)
        if r.ok:
            _feed(printer, r.host, rec, r.value)
            stopped = control.host_end(rec, r.value) == "stopped"
            row.update(state="stopped" if stopped else r.value.state, exit=r.value.exit,
                       last_line=printer.last_line(r.host))
        rows.append(row)
    return rows


@click.command()
@RUN_ARG
@JOB_OPT
@click.option("--follow", "-f", is_flag=True, help="Keep printing new lines until the job ends on every host.")
@click.option("--host", "host_names", multiple=True, metavar="HOST", shell_complete=complete_host, help="Only this host (repeatable).")
@click.option("--rank", "ranks", multiple=True, type=click.IntRange(0), metavar="R",
              help="Only this global rank's own log (repeatable), e.g. the full Python error of a failed rank.")
@click.option("--lines", "-n", default=20, show_default=True, type=click.IntRange(0, 100000),
              help="Lines of each log to show first.")
def logs(run_id, job, follow, host_names, ranks, lines):
    """Merged logs of a run from every host, each line prefixed by host and rank, coloured per host.

    Example: mae-launch logs --follow --host host1; mae-launch logs --host host1 --rank 1 -n 200
    """
    if (slurm := cli_slurm.slurm_run(run_id)) is not None:
        sys.exit(cli_slurm.logs(slurm, job, follow, lines))
    con = report.console()
    run, rec, results = control.tail(run_id, job, max(4096, lines * 400))
    keys = control.log_keys(run, rec, host_names, ranks)
    printer = LogPrinter(con, list(rec.hosts), show=False)
    offsets = {}
    for r in results:
        if r.host not in keys:
            continue
        if not r.ok:
            con.print(f"[red]{r.host}: {escape(r.error)}[/]")
            continue
        offsets[r.host] = _feed(printer, r.host, rec, r.value)
        labels = rec.hosts[r.host].labels()
        for key in r.value.chunks:
            if key in keys[r.host]:
                for line in printer.last_lines(r.host, key, lines):
                    con.print(printer.prefix(r.host, labels[key]) + line, soft_wrap=True)
    if not follow:
        sys.exit(report.exit_status([r for r in results if r.host in keys]))
    sys.exit(control.watch(con, run, rec, keys, offsets))


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
    con = report.console()
    con.print(report.summary_table(f"stop {run.id}", results, lambda r: (
        f"SIGTERM {r.value['term'] or '-'}; SIGKILL {r.value['kill'] or '-'}; nothing left")))
    silent = [r.host for r in results if not r.ok and r.kind in ("unreachable", "timeout")]
    parts = ([f"{', '.join(silent)} did not answer"] if silent else []) + [
        f"{r.host}: {r.error}" for r in results if not r.ok and r.host not in silent]
    if parts:
        con.print(f"stop incomplete: {'; '.join(parts)}. Run {run.id} is not recorded as stopped; run "
                  f"`mae-launch stop {run.id}` again when they answer", markup=False, style="red")
    sys.exit(report.exit_status(results))


@click.command()
@click.argument("run_ids", metavar="[RUN]...", nargs=-1, shell_complete=complete_run)
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
