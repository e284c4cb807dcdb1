"""Never destroy: is a host's workdir mae-launch's to replace?

Deploy replaces a workdir's contents (rsync --delete). Before anything is written, every host is
probed (templates/deploy_probe.sh.j2, read-only) and the deploy is refused (exit 2, one line naming
host and path, nothing touched on any host) when the workdir
- is `/`, the login user's home, or an ancestor of it;
- contains the venv, data or output path somewhere deploy would delete (not under a name the
  deny-list keeps: .venv/, venv/, data/, output/, runs/);
- holds anything besides mae-launch's own files (launcher/ownfiles.py: the kept layout, setup's and
  deploy's records) and carries no mae-launch marker (unless `adopt`: then what --delete would remove
  is listed first), so a workdir that only `mae-launch setup` has used is deployed into;
- holds a run whose processes are alive (unless `force`).
A workdir that passes is claimed (created with umask 077, marker written) as the sync starts.

A launch writes only under `<workdir>/runs/<id>`, and `foreign` refuses, before anything starts, a
workdir that is `/`, the login user's home or an ancestor of it, or that holds anything besides
mae-launch's own files (launcher/ownfiles.py) without a deploy's marker. A workdir that does
not exist yet is created by the launch; this checkout run in place on this machine is not asked.
"""
from __future__ import annotations

import pathlib
import posixpath

from launcher import remote
from launcher.paths import HostPath
from launcher.render import render_template
from launcher.ownfiles import HASH_MARKER, KEPT_NAMES, LAYOUT, OWNER_MARKER


def probe(t: remote.Target, facts: bool = False, venv=None, expect: str | None = None,
          launch: bool = False) -> dict:
    """What the workdir is (read-only): `other` names an entry that is not mae-launch's own (LAYOUT),
    empty when there is none; with `facts`, what a remap build there depends on. A workdir whose last
    deploy had content hash `expect` answers only {home, real, exists, ..., unchanged: '1'}. A
    `launch`'s look does not look for live runs."""
    done = t.run_template("deploy_probe.sh.j2", timeout=remote.connect_timeout(t.host) + 30, check=True,
                          workdir=t.host.workdir, owner_marker=OWNER_MARKER, hash_marker=HASH_MARKER,
                          facts=facts, venv=venv, expect=expect, layout=LAYOUT, launch=launch)
    return remote.parse_kv(done.stdout)


def claim(t: remote.Target) -> None:
    t.run_template("deploy_claim.sh.j2", timeout=remote.connect_timeout(t.host) + 30, check=True,
                   workdir=t.host.workdir, owner_marker=OWNER_MARKER)


def claiming_sync(t: remote.Target, record: str | None = None) -> list[str]:
    """rsync options that claim the workdir as the sync starts and, with `record` (a content hash),
    record the deploy when the sync succeeded: an SSH host's receiving rsync is started by
    templates/claim_rsync_path.j2. A local target is claimed now and needs none (nor records)."""
    if t.is_local:
        claim(t)
        return []
    path = render_template("claim_rsync_path.j2", workdir=t.host.workdir, owner_marker=OWNER_MARKER,
                           hash=record, marker=HASH_MARKER).strip()
    return [f"--rsync-path={path}"]


def same_dir(a, b) -> bool:
    try:
        return pathlib.Path(a).resolve() == pathlib.Path(b).resolve()
    except OSError:
        return False


def _launch_refusal(host, kv: dict) -> str | None:
    where = f"{host.name}: workdir {host.workdir}"
    home, real = kv.get("home", ""), kv.get("real", "")
    if real == "/" or _covers_home(real, home):
        return f"{where} is / or the login user's home (or above it); name a directory of its own (e.g. ~/mae-launch)"
    if kv.get("dir") == "0":
        return f"{where} exists and is not a directory"
    if kv.get("other") and kv.get("owned") != "1":
        return (f"{where} holds files mae-launch did not put there (e.g. {kv['other']}) and was not set up by "
                "mae-launch deploy")
    return None


def foreign(ts: list, checkout) -> list[str]:
    """One sentence per host whose workdir a launch must not write into (see the module's doc). A local
    host whose workdir is `checkout` is not asked; a host that cannot be asked is left to the launch."""
    asked = {t.name: t for t in ts if not (t.is_local and same_dir(t.host.workdir, checkout))}
    limit = max((remote.connect_timeout(t.host) for t in asked.values()), default=0) + 40
    looks = remote.fan_out(list(asked.values()), lambda t: probe(t, launch=True), timeout=limit)
    reasons = [_launch_refusal(asked[r.host].host, r.value) if r.ok else None for r in looks]
    return [r for r in reasons if r]


def _covers_home(real: str, home: str) -> bool:
    """Is the resolved workdir the login user's home or an ancestor of it?"""
    return bool(home and real) and _inside(home, real) is not None


def _expand(path: str, home: str) -> str:
    if path == "~" or path.startswith("~/"):
        return posixpath.normpath(home + path[1:]) if home else path
    return posixpath.normpath(path)


def _inside(path: str, parent: str) -> str | None:
    """`path` relative to `parent` ('' when equal), or None when outside it."""
    if path == parent:
        return ""
    prefix = parent.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else None


def refusal(inv, host, kv: dict, *, adopt: bool, force: bool) -> str | None:
    """Why deploying into this host's workdir must not happen (one sentence), or None."""
    where = f"{host.name}: workdir {host.workdir}"
    home, real = kv.get("home", ""), kv.get("real", "") or str(host.workdir)
    if real == "/":
        return f"{where} is / ; deploy replaces a workdir's contents, so name a directory of its own (e.g. ~/mae-launch)"
    if _covers_home(real, home):
        what = "the login user's home" if real == home else f"an ancestor of the login user's home ({home})"
        return (f"{where} is {what}; deploy replaces a workdir's contents (rsync --delete), so name a "
                "directory of its own (e.g. ~/mae-launch)")
    for key in ("venv", "data", "output"):
        value = inv.host_path(host, getattr(inv.paths, key))
        rel = _inside(_expand(str(value), home), _expand(str(host.workdir), home)) if value else None
        if rel is not None and rel.split("/")[0] not in KEPT_NAMES:
            return (f"{where} contains paths.{key} ({value}), which deploy's rsync --delete would remove; "
                    "put it outside the workdir or under .venv/, data/ or output/ there")
    if kv.get("dir") == "0":
        return f"{where} exists and is not a directory; name a directory"
    if kv.get("exists") == "1" and kv.get("other") and kv.get("owned") == "0" and not adopt:
        return (f"{where} is not empty and was not created by mae-launch deploy; deploy would delete its files "
                "(rsync --delete). Name a new or empty directory, or pass --adopt to see what would be removed "
                "and take the directory over")
    if kv.get("live") and not force:
        return (f"{where} has run(s) {kv['live']} still running there; a deploy would replace code under them. "
                "Stop them first (mae-launch stop RUN), or pass --force")
    return None


def would_delete(t: remote.Target, root: str, filters: list[str]) -> list[str]:
    """What `rsync --delete` from `root` would remove in this host's workdir (a dry run)."""
    argv = [*remote.RSYNC_BASE, "--delete", "--dry-run", "--itemize-changes", *filters, *t.rsync_args(),
            f"{root}/", t.remote_path(HostPath(str(t.host.workdir).rstrip("/") + "/"))]
    p = remote.run_local(argv, timeout=remote.connect_timeout(t.host) + 120, package="rsync")
    if p.returncode != 0:
        raise remote.RemoteError(t.name, "failed", "listing what --delete would remove failed",
                                 remote.tail(p.stderr))
    return [line.split(None, 1)[1] for line in p.stdout.splitlines() if line.startswith("*deleting ")]
