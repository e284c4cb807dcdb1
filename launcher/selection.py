"""Choose hosts of an inventory by name: `--host` (include) and `--exclude`, both repeatable.

A value is a host name, a host range (`node[01-04]`) or a shell-style pattern (`gpu-*`). Every value
must match at least one host; the chosen hosts keep inventory order; an empty choice is an error.
"""
from __future__ import annotations

import fnmatch

from launcher import hostrange
from launcher.errors import UserError


def _matches(value: str, names: list[str], flag: str) -> list[str]:
    try:
        wanted = hostrange.expand(value)
    except ValueError as err:
        raise UserError(f"{flag} {value}: {err}") from None
    hits = [n for n in names if any(fnmatch.fnmatchcase(n, w) for w in wanted)]
    if not hits:
        raise UserError(f"{flag} {value}: no such host in the inventory (hosts: {', '.join(names)})")
    return hits


def select(hosts: list, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list:
    """The hosts named by `include` (all when empty) minus those named by `exclude`, in inventory order."""
    names = [h.name for h in hosts]
    chosen = set(names)
    if include:
        chosen = {n for value in include for n in _matches(value, names, "--host")}
    for value in exclude:
        chosen -= set(_matches(value, names, "--exclude"))
    if not chosen:
        raise UserError("--host/--exclude leave no host to run on")
    return [h for h in hosts if h.name in chosen]
