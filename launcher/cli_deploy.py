"""`mae-launch deploy`: sync the project to every host and build the remap op there."""
import pathlib
import sys

import click
from rich.console import Console

from launcher import deploy as deploy_mod
from launcher import options, remote
from launcher.cli import main


@main.command()
@options.inventory_option
@click.option("--force", is_flag=True, help="Sync and rebuild even where the recorded content hash matches.")
@click.option("--no-build", is_flag=True, help="Only sync; do not run `make -C remap` on the hosts.")
@click.option("--parallel", default=remote.DEFAULT_LIMIT, show_default=True, metavar="N",
              help="Hosts worked on at once.")
@click.option("--source", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="Project tree to send (default: this checkout).")
def deploy(inventory_path, force, no_build, parallel, source):
    """Copy the project to every host's workdir (rsync, incremental; .gitignore'd files, secrets and
    outputs excluded) and build the remap op there. All or nothing: any failing host fails the command.

    Example: mae-launch deploy -i inventories/gpu-cluster.yml
    """
    console = Console(highlight=False, soft_wrap=True)
    inv = options.load(inventory_path)
    kwargs = {"root": pathlib.Path(source)} if source else {}
    results = deploy_mod.deploy(inv, force=force, build=not no_build, limit=parallel, console=console, **kwargs)
    console.print(remote.summary_table(f"deploy to {len(results)} host(s)", results))
    if not all(r.ok for r in results):
        console.print(remote.failure_message("deploy", results), markup=False)
    sys.exit(remote.exit_status(results))
