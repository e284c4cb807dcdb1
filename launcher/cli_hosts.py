"""`mae-launch check | deploy`: look at and prepare every host of an inventory."""
import pathlib
import sys

import click

from launcher import check as check_mod
from launcher import deploy as deploy_mod
from launcher import options, remote, report


@click.command()
@options.inventory_option
@click.option("--min-free-gb", default=2.0, show_default=True, help="Free disk the workdir needs.")
def check(inventory_path, min_free_gb):
    """Check every host at once: reachable with a verified host key, workdir writable, venv with the
    same torch and timm everywhere, compiler for remap, free disk, torchrun/poprun, data path,
    rendezvous port free on the controller; for poprun inventories also the Poplar SDK (enable scripts,
    poptorch/popdist versions equal everywhere, poprun --version), the V-IPU server and each job's
    partition. Exit status 1 when any check fails.

    Example: mae-launch check -i inventories/pod64.yml
    """
    con = report.console()
    inv = options.load(inventory_path)
    rows, ok = check_mod.run_checks(inv, min_free_gb=min_free_gb)
    con.print(check_mod.table(rows))
    con.print("[green]all checks passed[/]" if ok else "[red]some checks failed[/]")
    sys.exit(0 if ok else 1)


@click.command()
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
    con = report.console()
    inv = options.load(inventory_path)
    kwargs = {"root": pathlib.Path(source)} if source else {}
    results = deploy_mod.deploy(inv, force=force, build=not no_build, limit=parallel, console=con, **kwargs)
    sys.exit(report.print_results(con, f"deploy to {len(results)} host(s)", "deploy", results))
