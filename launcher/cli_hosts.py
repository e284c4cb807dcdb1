"""`mae-launch check | deploy`: look at and prepare every host of an inventory."""
import json
import pathlib
import sys

import click

from launcher import check as check_mod
from launcher import deploy as deploy_mod
from rich.markup import escape

from launcher import layout, options, remote, report, sshconf
from launcher import setup as setup_mod
from launcher.inventory import PACKAGE_ROOT


@click.command()
@options.inventory_option
@click.option("--min-free-gb", default=2.0, show_default=True, help="Free disk the workdir needs.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON instead of a table.")
@click.option("--explain", metavar="HOST", default=None,
              help="Only show HOST's SSH settings and where each came from (inventory, ssh config, OpenSSH default).")
def check(inventory_path, min_free_gb, as_json, explain):
    """Check every host at once: reachable with a verified host key, workdir writable, venv with the
    same torch and timm everywhere, compiler for remap, rsync (there and here), free disk, torchrun/poprun,
    data path, rendezvous port free on the controller, whether `setup` is up to date; for poprun
    inventories also the Poplar SDK (enable scripts, poptorch/popdist versions equal everywhere,
    poprun --version), the V-IPU server and each job's partition. Exit status 1 when any check fails.

    Example: mae-launch check -i inventories/pod64.yml
    """
    con = report.console()
    inv = options.load(inventory_path)
    if explain is not None:
        grid = layout.Grid(f"ssh settings of {explain}", ["setting", "value", "from"])
        for key, value, origin in sshconf.explain(inv.host(explain)):
            grid.add(escape(key), escape(value), escape(origin))
        layout.show(con, grid)
        return
    rows, ok = check_mod.run_checks(inv, min_free_gb=min_free_gb)
    problems = check_mod.local_problems()
    ok = ok and not problems
    if as_json:
        click.echo(json.dumps({**check_mod.records(rows, ok), "local_problems": problems}, indent=1))
        sys.exit(0 if ok else 1)
    layout.show(con, check_mod.grid(rows))
    for problem in problems:
        con.print(f"[red]✗ {problem}[/]")
    con.print("[green]all checks passed[/]" if ok else "[red]some checks failed[/]")
    sys.exit(0 if ok else 1)


@click.command()
@options.inventory_option
@click.option("--force", is_flag=True, help="Sync and rebuild even where the recorded content hash matches, "
              "and even while a run of that workdir is alive.")
@click.option("--adopt", is_flag=True, help="Take over a non-empty workdir that mae-launch did not create, "
              "after listing what --delete removes there.")
@click.option("--no-build", is_flag=True, help="Only sync; do not run `make -C remap` on the hosts.")
@click.option("--parallel", default=remote.DEFAULT_LIMIT, show_default=True, metavar="N",
              help="Hosts worked on at once.")
@click.option("--source", type=click.Path(exists=True, file_okay=False), default=None, metavar="DIR",
              help="Project tree to send (default: this checkout).")
def deploy(inventory_path, force, adopt, no_build, parallel, source):
    """Copy the project to every host's workdir (rsync, incremental; .gitignore'd files, secrets and
    outputs excluded) and build the remap op there. All or nothing: any failing host fails the command.
    A workdir that is /, the home directory, or a non-empty directory mae-launch did not create is
    refused (exit 2) before anything is written.

    Example: mae-launch deploy -i inventories/gpu-cluster.yml
    """
    con = report.console()
    inv = options.load(inventory_path)
    kwargs = {"root": pathlib.Path(source)} if source else {}
    results = deploy_mod.deploy(inv, force=force, adopt=adopt, build=not no_build, limit=parallel, console=con,
                                **kwargs)
    sys.exit(report.print_results(con, f"deploy to {len(results)} host(s)", "deploy", results))


@click.command(name="setup")
@options.inventory_option
@click.option("--force", is_flag=True, help="Run everything again even where the recorded setup hash matches.")
@click.option("--wheelhouse", is_flag=True,
              help="Download the wheels once here (into --wheel-dir) and sync them to the hosts, for hosts "
                   "without a package index; they must run the same Python version and platform as this machine.")
@click.option("--wheel-dir", type=click.Path(file_okay=False), default=str(PACKAGE_ROOT / "wheelhouse"),
              show_default=True, metavar="DIR", help="Where --wheelhouse keeps the downloaded wheels.")
@click.option("--parallel", default=remote.DEFAULT_LIMIT, show_default=True, metavar="N",
              help="Hosts worked on at once.")
@click.option("--timeout", type=click.FloatRange(min=1), default=3600, show_default=True, metavar="SECONDS",
              help="Longest a host may take.")
def setup(inventory_path, force, wheelhouse, wheel_dir, parallel, timeout):
    """Set every host up: run the inventory's `setup:` commands, then create or refresh the venv
    (paths.venv) with the pinned requirements (paths.requirements, default the project's). A host
    whose recorded setup matches is left alone. All or nothing: any failing host fails the command.

    Example: mae-launch setup -i inventories/gpu-cluster.yml
    """
    con = report.console()
    inv = options.load(inventory_path)
    results = setup_mod.setup(inv, force=force, wheelhouse=pathlib.Path(wheel_dir) if wheelhouse else None,
                              limit=parallel, timeout=timeout, console=con)
    sys.exit(report.print_results(con, f"setup of {len(results)} host(s)", "setup", results))
