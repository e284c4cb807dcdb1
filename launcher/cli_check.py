"""`mae-launch check`: concurrent preflight of every host of an inventory."""
import sys

import click
from rich.console import Console

from launcher import check as check_mod
from launcher import options
from launcher.cli import main


@main.command()
@options.inventory_option
@click.option("--min-free-gb", default=2.0, show_default=True, help="Free disk the workdir needs.")
def check(inventory_path, min_free_gb):
    """Check every host at once: reachable with a verified host key, workdir writable, venv with the
    same torch and timm everywhere, compiler for remap, free disk, torchrun/poprun, data path,
    rendezvous port free on the controller. Exit status 1 when any check fails.

    Example: mae-launch check -i inventories/pod64.yml
    """
    console = Console(highlight=False, soft_wrap=True)
    inv = options.load(inventory_path)
    rows, ok = check_mod.run_checks(inv, min_free_gb=min_free_gb)
    console.print(check_mod.table(rows))
    console.print("[green]all checks passed[/]" if ok else "[red]some checks failed[/]")
    sys.exit(0 if ok else 1)
