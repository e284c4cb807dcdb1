"""The `mae-launch` command line: the click group `main` and the list of its commands.

Commands are defined in `launcher/cli_<topic>.py` (parse options, call one orchestration function,
print) and named here explicitly; a command's module is imported when that command runs (or `--help`
lists them all), so `mae-launch deploy` does not load what `pipeline` or `bench` need. Every
`UserError` becomes one line `error: <message>` on stderr with exit status 2, without a traceback; an
inventory with several problems gives one such line per problem.
"""
import importlib
import sys

import click

from launcher.errors import UserError
from launcher.jobs import JOB_NAMES


def _version() -> str:
    """The installed version, looked up only for --version (importing importlib.metadata would cost
    every command about 0.05 s of start-up)."""
    try:
        from importlib.metadata import version
        return version("mae-launch")
    except Exception:  # not installed (running from a checkout)
        return "0+unknown"


def _print_version(ctx, _param, value):
    if value and not ctx.resilient_parsing:
        click.echo(f"mae-launch, version {_version()}")
        ctx.exit()


# command name -> "module:attribute" under launcher/ (an attribute that is a dict is indexed by the name)
COMMANDS = {
    "check": "cli_hosts:check", "setup": "cli_hosts:setup", "deploy": "cli_hosts:deploy",
    "exec": "cli_exec:exec_command", "render": "cli_render:render",
    **{job: "cli_jobs:JOB_COMMANDS" for job in JOB_NAMES}, "pipeline": "cli_jobs:pipeline",
    "runs": "cli_runs:runs_command", "status": "cli_runs:status", "logs": "cli_runs:logs", "stop": "cli_runs:stop",
    "clean": "cli_runs:clean", "fetch": "cli_fetch:fetch_command", "tensorboard": "cli_fetch:tensorboard_command",
    "bench": "cli_bench:bench", "inventory": "cli_inventory:inventory",
}


class _Group(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        command = getattr(importlib.import_module(f"launcher.{module}"), attribute)
        return command[name] if isinstance(command, dict) else command

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
            message = _program_hint(exc) or " ".join(exc.format_message().split())
            click.echo(f"error: {name}{message}", err=True)
            sys.exit(2)


def _program_hint(exc: click.UsageError) -> str:
    """An unknown option of a job command is most likely meant for the program (python -m mae.JOB):
    say that such arguments go after `--`, with the command line that does it."""
    if not isinstance(exc, click.NoSuchOption) or exc.ctx is None or exc.ctx.info_name not in JOB_NAMES + ("pipeline",):
        return ""
    args = sys.argv[1:]
    at = next((i for i, a in enumerate(args) if a.split("=")[0] == exc.option_name), len(args))
    example = " ".join(["mae-launch", *args[:at], "--", *args[at:]])
    job = exc.ctx.info_name
    program = "each stage's python -m mae.<job>" if job == "pipeline" else f"python -m mae.{job}"
    return f"no such option {exc.option_name}; arguments for the program ({program}) go after `--`, e.g. {example}"


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show the version and exit.")
def main():
    """Masked Autoencoder training from one machine to a rack of IPU-PODs or GPU nodes.

    Describe your machines once in a YAML inventory (see inventories/); mae-launch validates it,
    renders the exact poprun or torchrun command and job script for every host, and runs, follows
    and stops jobs. Commands that take --inventory use inventories/local.yml (this machine) without it.
    """
