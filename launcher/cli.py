"""The `mae-launch` command line: the click group `main` and the list of its commands.

Commands are defined in `launcher/cli_<topic>.py` (parse options, call one orchestration function,
print) and added here explicitly. Every `UserError` becomes one line `error: <message>` on stderr
with exit status 2, without a traceback; an inventory with several problems gives one such line per
problem.
"""
import sys

import click

from launcher import cli_bench, cli_exec, cli_fetch, cli_hosts, cli_jobs, cli_render, cli_runs
from launcher.errors import UserError

try:
    from importlib.metadata import version as _version
    VERSION = _version("mae-launch")
except Exception:  # not installed (running from a checkout)
    VERSION = "0+unknown"


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            problems = getattr(exc, "problems", None) or [str(exc) or exc.__class__.__name__]
            for line in problems:
                click.echo(f"error: {' '.join(line.split())}", err=True)
            sys.exit(2)
        except click.UsageError as exc:  # a bad option value of a command: one line too
            name = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            click.echo(f"error: {name}{' '.join(exc.format_message().split())}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(VERSION, "--version", prog_name="mae-launch")
def main():
    """Masked Autoencoder training from one machine to a rack of IPU-PODs or GPU nodes.

    Describe your machines once in a YAML inventory (see inventories/); mae-launch validates it,
    renders the exact poprun or torchrun command and job script for every host, and runs, follows
    and stops jobs. Commands that take --inventory use inventories/local.yml (this machine) without it.
    """


COMMANDS = [
    cli_hosts.check, cli_hosts.setup, cli_hosts.deploy, cli_exec.exec_command, cli_render.render,
    *cli_jobs.JOB_COMMANDS, cli_jobs.pipeline,
    cli_runs.runs_command, cli_runs.status, cli_runs.logs, cli_runs.stop, cli_runs.clean,
    cli_fetch.fetch_command, cli_fetch.tensorboard_command,
    cli_bench.bench,
]
for _command in COMMANDS:
    main.add_command(_command)
