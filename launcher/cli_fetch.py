"""`mae-launch fetch | tensorboard`: bring a run's files back and look at its training curves."""
from __future__ import annotations

import os
import subprocess
import sys

import click

from launcher import report, retrieve
from launcher.completion import complete_job, complete_run

RUN_ARG = click.argument("run_id", metavar="[RUN]", required=False, shell_complete=complete_run)
JOB_OPT = click.option("--job", default=None, metavar="JOB", shell_complete=complete_job, help="Only this job of the run (default: every job).")
TO_OPT = click.option("--to", "to", default=None, metavar="DIR", help="Copy into DIR instead of runs/<RUN>/.")


@click.command(name="fetch")
@RUN_ARG
@JOB_OPT
@TO_OPT
@click.option("--no-checkpoints", is_flag=True, help="Leave the *.pth checkpoints on the hosts.")
@click.option("--all-hosts", is_flag=True, help="Every host's output folder, not only the rank-0 host's.")
@click.option("--bwlimit", type=click.IntRange(min=1), default=None, metavar="KBPS",
              help="Bandwidth limit per transfer in KiB/s (rsync --bwlimit).")
def fetch_command(run_id, job, to, no_checkpoints, all_hosts, bwlimit):
    """Copy a run's outputs and every host's logs back here with rsync (resumable: run it again
    after an interruption and only what is missing is sent). RUN defaults to the latest.

    Into runs/<RUN>/ (or DIR): <job>/output/ (the rank-0 host's output folder), hosts/<host>/ (scripts
    and logs of each host).

    Example: mae-launch fetch --job pretrain --no-checkpoints
    """
    console = report.console()
    _, results = retrieve.fetch_run(run_id, job, to, all_hosts=all_hosts, checkpoints=not no_checkpoints,
                                    console=console, bwlimit=bwlimit)
    if not all(r.ok for r in results):
        console.print(report.failure_message("fetch", results), markup=False)
    sys.exit(report.exit_status(results))


@click.command(name="tensorboard")
@RUN_ARG
@JOB_OPT
@TO_OPT
@click.option("--print", "print_only", is_flag=True, help="Fetch, then print the TensorBoard command instead of running it.")
@click.option("--port", default=None, type=int, help="TensorBoard's port (default: its own, 6006).")
@click.option("--bind", "bind", default=None, metavar="ADDR", help="Address TensorBoard listens on (default localhost).")
def tensorboard_command(run_id, job, to, print_only, port, bind):
    """Fetch a run's TensorBoard event files (rank-0 output of each job) and start TensorBoard on them.
    RUN defaults to the latest.

    Example: mae-launch tensorboard --print
    """
    console = report.console()
    dest, results = retrieve.fetch_run(run_id, job, to, all_hosts=False, checkpoints=False, console=console,
                                       events_only=True)
    if not all(r.ok for r in results):
        console.print(report.failure_message("fetching the event files", results), markup=False)
        sys.exit(1)
    argv = retrieve.tensorboard_argv(dest, port=port, host=bind)
    if print_only:
        click.echo(retrieve.shell_line(argv))
        return
    console.print(f"$ {retrieve.shell_line(argv)}", markup=False)
    sys.stdout.flush()
    sys.exit(subprocess.run(argv, env=os.environ.copy()).returncode)
