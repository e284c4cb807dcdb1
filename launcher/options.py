"""Options shared by mae-launch commands: which inventory, which run id."""
import math
import os
from pathlib import Path

import click

from launcher.completion import complete_host, complete_inventory
from launcher.errors import UserError
from launcher.adjust import adjust
from launcher.inventory import PACKAGE_ROOT, load_inventory
from launcher.plan import check_run_id
from launcher.runs import RunStore

DEFAULT_INVENTORY = "inventories/local.yml"


class Seconds(click.FloatRange):
    """A finite number of seconds within [min, max] (nan and inf are refused, which FloatRange lets by)."""

    name = "seconds"

    def convert(self, value, param, ctx):
        rv = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return super().convert(rv, param, ctx)


def resolve_inventory_path(value: str) -> Path:
    """`value` relative to the current directory, else to the project (`inventories/NAME[.yml]` too)."""
    path = Path(os.path.expanduser(value))
    if path.is_file() or path.is_absolute():
        return path
    candidates = [PACKAGE_ROOT / path, PACKAGE_ROOT / "inventories" / path]
    if path.suffix not in (".yml", ".yaml"):
        candidates.append(PACKAGE_ROOT / "inventories" / f"{path}.yml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise UserError(f"inventory {value!r} not found here or under {PACKAGE_ROOT / 'inventories'}; give a path to a .yml file")


def inventory_option(func):
    """`--inventory PATH` (env MAE_LAUNCH_INVENTORY, default inventories/local.yml)."""
    return click.option(
        "--inventory", "-i", "inventory_path", default=DEFAULT_INVENTORY, show_default=True,
        envvar="MAE_LAUNCH_INVENTORY", metavar="PATH", shell_complete=complete_inventory,
        help="Inventory YAML: a path, or a name under the project's inventories/ (e.g. pod64).")(func)


def inventory_is_default() -> bool:
    """Did the command run with the default inventory, neither -i nor $MAE_LAUNCH_INVENTORY given?"""
    source = click.get_current_context().get_parameter_source("inventory_path")
    return source in (None, click.core.ParameterSource.DEFAULT)


def default_inventory_note() -> str:
    """One line saying that a job runs on the default inventory (this machine), or ''."""
    if not inventory_is_default():
        return ""
    return (f"note: no --inventory given: running on {DEFAULT_INVENTORY} (this machine); "
            "pass -i PATH for another")


def load_for_resume(run_id: str, inventory_path: str, explicit: bool, other: bool):
    """The inventory to resume run `run_id` with: the one it was started with (recorded, absolute),
    unless --inventory names another, which is refused without --other-inventory."""
    recorded = RunStore().load(check_run_id(run_id)).inventory
    if not explicit:
        if not recorded or not Path(recorded).is_file():
            raise UserError(f"run {run_id} was started with inventory {recorded or '(unrecorded)'}, which is not "
                            "there any more; name one with --inventory and --other-inventory")
        return load(recorded)
    path = resolve_inventory_path(inventory_path)
    if recorded and str(path.resolve()) != recorded and not other:
        raise UserError(f"run {run_id} was started with inventory {recorded}, not {path}; resume it with that one "
                        f"(leave out --inventory), or pass --other-inventory to use {path}")
    return load(str(path))


def load(inventory_path: str, connecting: bool = True):
    """Resolve and load the inventory named by --inventory. A command that connects to the hosts also
    needs the local files the inventory names (identity_file): a missing one is refused here."""
    inv = load_inventory(resolve_inventory_path(inventory_path))
    if connecting:
        inv.require_local_files()
    return inv


def adjust_options(func):
    """`--host/--exclude` (a subset of the hosts), `--env K=V` and `-- ARGS...` (program arguments)."""
    for deco in reversed([
        click.option("--host", "hosts", multiple=True, metavar="HOST", shell_complete=complete_host,
                     help="Run on this host only (name, range or pattern; repeatable): ranks are recomputed."),
        click.option("--exclude", "excludes", multiple=True, metavar="HOST", shell_complete=complete_host, help="Leave this host out (repeatable)."),
        click.option("--env", "envs", multiple=True, metavar="K=V",
                     help="Extra environment variable for the job (repeatable; secrets only from the inventory)."),
        click.argument("program_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- ARGS...]"),
    ]):
        func = deco(func)
    return func


def load_adjusted(inventory_path: str, hosts=(), excludes=(), envs=(), program_args=(), jobs=(),
                  connecting: bool = True):
    """The inventory named by --inventory, with the launch adjustments applied (and validated)."""
    return adjust(load(inventory_path, connecting), hosts, excludes, envs, program_args, jobs)
