"""The `mae-launch` command line: a thin surface over the launcher modules.

This module defines the click group `main` and turns every `UserError` into one line
`error: <message>` on stderr with exit status 2 (no traceback). Commands live in modules named
`launcher/cli_<topic>.py`; each registers itself on `main` (`@main.command()`), and all of them are
imported below, so adding a command never means editing this file.
"""
import importlib
import pkgutil
import sys

import click

import launcher
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
            message = " ".join(str(exc).split()) or exc.__class__.__name__
            click.echo(f"error: {message}", err=True)
            sys.exit(2)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(VERSION, "--version", prog_name="mae-launch")
def main():
    """Masked Autoencoder training from one machine to a rack of IPU-PODs or GPU nodes.

    Describe your machines once in a YAML inventory (see inventories/); mae-launch validates it,
    renders the exact poprun or torchrun command and job script for every host, and runs, follows
    and stops jobs. Without --inventory every command uses inventories/local.yml: this machine.
    """


def _register_commands() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(launcher.__path__)):
        if module.startswith("cli_"):
            importlib.import_module(f"launcher.{module}")


_register_commands()
