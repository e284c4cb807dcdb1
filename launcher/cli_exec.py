"""`mae-launch exec`: run a command on every host (or a chosen subset) of an inventory."""
import sys

import click
from launcher import execute, layout, options, report, selection
from launcher.completion import complete_host
from launcher.errors import UserError


@click.command(name="exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@options.inventory_option
@click.option("--host", "hosts", multiple=True, metavar="HOST", shell_complete=complete_host, help="Only this host (name, range or pattern; repeatable).")
@click.option("--exclude", "excludes", multiple=True, metavar="HOST", help="Not this host (repeatable).")
@click.option("--no-venv", is_flag=True, help="Do not activate the inventory's virtualenv first.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="Kill the command on a host after this many seconds (that host then fails).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
def exec_command(inventory_path, hosts, excludes, no_venv, timeout, command):
    """Run CMD on every selected host at once, in its workdir with the venv active. Each word of CMD
    stays one argument (quoted on the host); use `bash -c '...'` for pipes. Output (stdout and stderr
    merged) is prefixed with the host's name; a table of exit statuses ends it, and the exit status
    is 1 when any host failed.

    Example: mae-launch exec -i inventories/pod64.yml --exclude pod64-host3 -- python -c 'import torch'
    """
    if not command:
        raise UserError("no command: put it after --, e.g. mae-launch exec -- nvidia-smi -L")
    console = report.console()
    inv = options.load(inventory_path)
    chosen = selection.select(inv.hosts, hosts, excludes)
    results = execute.run_everywhere(inv, chosen, list(command), venv=not no_venv, timeout=timeout, console=console)
    layout.show(console, execute.exit_grid(results))
    sys.exit(report.exit_status(results))
