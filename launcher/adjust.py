"""Launch adjustments: the inventory as one launch changes it (`--host/--exclude`, `--env K=V`,
`-- ARGS`), validated again like a loaded one, so an impossible topology is refused before anything
starts."""
import re

from launcher import hostrange, selection
from launcher.errors import InventoryError, PlanError
from launcher.inventory import Inventory, resolve
from launcher.jobs import JOB_NAMES
from launcher.schema import EnvValue, InventorySpec

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def adjust(inv: Inventory, include=(), exclude=(), env=(), args=(), jobs=()) -> Inventory:
    """The inventory as one launch adjusts it, validated again like a loaded one (an impossible topology
    is refused here, before anything starts):

    include/exclude: host names, ranges or patterns choosing a subset of the hosts (torchrun's
      nnodes and ranks, poprun's hosts and instances follow from it; `replicas` of torchrun jobs, a
      cross-check of the full inventory, is dropped);
    env: `K=V` strings added to the inventory's env (never secret; a secret of the inventory cannot be
      replaced from the command line);
    args: program arguments appended to the args of each job in `jobs`.
    """
    spec, updates = inv.spec, {}
    if include or exclude:
        chosen = {h.name for h in selection.select(inv.hosts, tuple(include), tuple(exclude))}
        updates["hosts"] = _chosen_hosts(spec, chosen)
        if spec.controller is not None and spec.controller not in chosen:
            updates["controller"] = None
    if env:
        updates["env"] = {**spec.env, **_env_pairs(inv, env)}
    job_updates = {}
    for name in JOB_NAMES:
        js = getattr(spec.jobs, f"{name}_")
        if js is None:
            continue
        changes = {}
        if args and name in jobs:
            changes["args"] = list(js.args) + list(args)
        if "hosts" in updates and spec.launcher == "torchrun" and js.replicas is not None:
            changes["replicas"] = None
        if changes:
            job_updates[f"{name}_"] = js.model_copy(update=changes)
    if job_updates:
        updates["jobs"] = spec.jobs.model_copy(update=job_updates)
    if not updates:
        return inv
    try:
        return resolve(spec.model_copy(update=updates), inv.source_path)
    except InventoryError as err:
        what = str(err).split(": ", 1)[-1]
        chosen = f" on {', '.join(h.name for h in updates['hosts'])}" if "hosts" in updates else ""
        raise PlanError(f"{inv.source_path}: this launch{chosen} is impossible: {what}") from None


def _chosen_hosts(spec: InventorySpec, chosen: set) -> list:
    out = []
    for hs in spec.hosts:
        for name in hostrange.expand(hs.name):
            if name in chosen:
                out.append(hs if name == hs.name else hs.model_copy(update={"name": name}))
    return out


def _env_pairs(inv: Inventory, pairs) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _ENV_NAME.fullmatch(key):
            raise PlanError(f"--env {pair!r}: write NAME=VALUE with NAME a shell variable name")
        secret = inv.env.get(key) or next((j.env[key] for j in inv.jobs.values() if key in j.env), None)
        if secret is not None and secret.secret:
            raise PlanError(f"--env {key}: {key} is a secret of {inv.source_path}; secret values come only "
                            "from the inventory")
        out[key] = EnvValue(value=value)
    return out
