"""`status`, `logs` and `stop` of runs whose jobs went to Slurm: what Slurm says, printed."""
from __future__ import annotations

from typing import Optional

from rich.markup import escape
from rich.table import Table

from launcher import report, slurm_orchestrate
from launcher.runs import RunStore


def slurm_run(run_id: Optional[str]):
    """The recorded run if its jobs went to Slurm, else None."""
    run = RunStore().load(run_id)
    return run if run.slurm_jobs() else None


def status(run, job_name: Optional[str]) -> int:
    con = report.console()
    table = Table(title=f"run {run.id} (Slurm)", title_justify="left")
    for col in ("job", "slurm job", "state", "nodes", "last log line"):
        table.add_column(col, overflow="fold")
    for job, st, last in slurm_orchestrate.status(con, RunStore(), run, job_name):
        text = st.describe() if st is not None else job.state
        colour = "green" if text in ("running", "completed") else "yellow" if text.startswith("pending") else "red"
        table.add_row(job.job, job.slurm_job_id or "-", f"[{colour}]{escape(text)}[/]",
                      ",".join(st.nodes) if st is not None else "", escape(last))
    con.print(table)
    return 0


def logs(run, job_name: Optional[str], follow: bool, lines: int) -> int:
    return slurm_orchestrate.logs(report.console(), run, job_name, follow, lines)


def stop(run) -> int:
    con = report.console()
    ids, left = slurm_orchestrate.stop(RunStore(), run)
    if left:
        con.print(f"[red]scancel sent, but Slurm still shows job(s) {' '.join(left)} of run {run.id}[/]")
        return 1
    con.print(f"stopped run {run.id}: Slurm job(s) {' '.join(ids) or '-'} cancelled (or already ended); "
              "squeue shows none of them")
    return 0
