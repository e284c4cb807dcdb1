"""Options shared by mae-launch commands: which inventory, which run id."""
import os
from pathlib import Path

import click

from launcher.errors import UserError
from launcher.inventory import PACKAGE_ROOT, load_inventory

DEFAULT_INVENTORY = "inventories/local.yml"


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
        envvar="MAE_LAUNCH_INVENTORY", metavar="PATH",
        help="Inventory YAML: a path, or a name under the project's inventories/ (e.g. pod64).")(func)


def load(inventory_path: str, connecting: bool = True):
    """Resolve and load the inventory named by --inventory. A command that connects to the hosts also
    needs the local files the inventory names (identity_file): a missing one is refused here."""
    inv = load_inventory(resolve_inventory_path(inventory_path))
    if connecting:
        inv.require_local_files()
    return inv
