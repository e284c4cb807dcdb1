"""Shell completion of mae-launch's values (click's own mechanism: `_MAE_LAUNCH_COMPLETE=bash_source`).

Each function is a click `shell_complete` callback (ctx, param, incomplete) -> completions, and
never fails: a completion that cannot be computed offers nothing (the shell falls back to files).
Run ids come from the run store (newest first); hosts from the run named on the command line, else
from the inventory given with -i; inventories are the project's inventories/ and *.yml paths here.
"""
import glob
import os

from launcher.jobs import JOB_NAMES


def _items(values, incomplete: str, **kwargs) -> list:
    from click.shell_completion import CompletionItem  # imported only when completing
    return [CompletionItem(v, **kwargs) for v in values if v.startswith(incomplete)]


def complete_run(ctx, param, incomplete: str) -> list:
    try:
        from launcher.runs import RunStore
        return _items(reversed(RunStore().list_ids()), incomplete)
    except Exception:
        return []


def complete_job(ctx, param, incomplete: str) -> list:
    return _items(JOB_NAMES, incomplete)


def _host_names(ctx) -> list:
    params = ctx.params
    run_id = params.get("run_id") or (params.get("run_ids") or [None])[0]
    if run_id is not None or "inventory_path" not in params:
        from launcher.runs import RunStore
        return RunStore().load(run_id).host_names()
    from launcher.inventory import PACKAGE_ROOT, load_inventory
    value = params["inventory_path"]
    for path in (value, PACKAGE_ROOT / value, PACKAGE_ROOT / "inventories" / value,
                 PACKAGE_ROOT / "inventories" / f"{value}.yml"):
        if os.path.isfile(path):
            return [h.name for h in load_inventory(path).hosts]
    return []


def complete_host(ctx, param, incomplete: str) -> list:
    try:
        return _items(_host_names(ctx), incomplete)
    except Exception:
        return []


def complete_inventory(ctx, param, incomplete: str) -> list:
    """inventories/NAME.yml of the project as names (pod64), then folders and *.yml paths here."""
    try:
        from launcher.inventory import PACKAGE_ROOT
        names = sorted(os.path.basename(p)[:-4] for p in glob.glob(str(PACKAGE_ROOT / "inventories" / "*.yml")))
        paths = sorted(glob.glob(glob.escape(os.path.expanduser(incomplete)) + "*"))
        return _items(names, incomplete) + _items(
            [p + "/" if os.path.isdir(p) else p for p in paths if os.path.isdir(p) or p.endswith((".yml", ".yaml"))], "")
    except Exception:
        return []
