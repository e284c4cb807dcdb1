"""Deploy: rsync the project to every host's workdir, then build the remap op there. All or nothing.

What is synced: the project tree minus `.gitignore`d paths minus a built-in deny-list (secrets and
outputs; the virtualenv is never synced: `paths.venv` names one present on each host). A sha256 of
exactly that file set (names, modes, contents) is recorded on each host in `<workdir>/.mae-launch-deploy`
after a successful build, so a deploy that finds nothing changed costs one cheap command per host.
"""
from __future__ import annotations

import hashlib
import os
import pathlib

from rich.console import Console

from launcher import buildshare, ownfiles, remote, report, workdirs
from launcher.errors import UserError
from launcher.inventory import PACKAGE_ROOT
from launcher.openssh import Multiplexer
from launcher.paths import HostPath

MARKER = ownfiles.HASH_MARKER
# Never synced, whatever .gitignore says. Inventories (hosts need only the scripts rendered from them,
# and an inventory may hold secret env values); credentials of every usual kind; private keys by their
# OpenSSH names (never `id_*`: that would drop source files such as id_utils.py); outputs, environments,
# caches and local builds; `.git` (a directory, or a worktree's file); mae-launch's own records in a
# workdir (setup's and deploy's: launcher/ownfiles.py), which --delete therefore never removes.
CREDENTIALS = [".env", ".env.*", ".envrc", ".netrc", ".git-credentials", ".pypirc", ".npmrc", ".aws/",
               ".ssh/", ".docker/config.json", ".kube/config", "wandb/", "credentials.json", "*.pem", "*.key",
               "*.p12", "*.pfx", "*.ppk", "*.keytab"]
KEY_NAMES = ["id_rsa", "id_dsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss"]
DENY = (["/inventories/", ".git"] + CREDENTIALS + [name + suffix for name in KEY_NAMES for suffix in ("", ".*", "-*")]
        + ["/runs/", "/output/", "/data/", "/wheelhouse/", ".venv", "venv", "/.cluster/", "/.slurm/", "__pycache__/", "*.pyc",
           ".pytest_cache/", ".hypothesis/", *ownfiles.rsync_protect(), "remap/build/", "remap/*.so", "remap/*.o"])


def filter_args(extra: tuple = ()) -> list[str]:
    """rsync filters: the deny-list, then `extra` patterns (an inventory file inside the tree), then .gitignore."""
    return [f"--exclude={p}" for p in (*DENY, *extra)] + ["--filter=:- .gitignore"]


def inventory_excludes(inv, root: pathlib.Path) -> tuple:
    """The inventory file itself when it lies inside the tree being sent (it is never synced)."""
    try:
        rel = pathlib.Path(inv.source_path).resolve().relative_to(root)
    except (ValueError, OSError):
        return ()
    return ("/" + rel.as_posix(),)


def file_list(root: pathlib.Path, extra: tuple = ()) -> list[str]:
    """The relative paths rsync would send from `root` (same filters), sorted."""
    p = remote.run_local(["rsync", "-r", "--list-only", *filter_args(extra), f"{root}/"], timeout=300, package="rsync")
    if p.returncode != 0:
        raise UserError(f"cannot list the files to send from {root}: {remote.tail(p.stderr, 1)}")
    names = []
    for line in p.stdout.splitlines():
        parts = line.split(None, 4)
        if len(parts) == 5 and parts[4] != ".":
            name = parts[4]
            if parts[0].startswith("l") and " -> " in name:
                name = name.split(" -> ")[0]
            names.append(name)
    return sorted(names)


def content_hash(root: pathlib.Path, names: list | None = None) -> str:
    h = hashlib.sha256()
    for name in (file_list(root) if names is None else names):
        path = root / name
        st = path.lstat()
        h.update(f"{name}\0{st.st_mode & 0o777777}\0".encode())
        if path.is_symlink():
            h.update(os.readlink(path).encode())
        elif path.is_file():
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        h.update(b"\0")
    return h.hexdigest()


class _Deploy:
    """One deploy: the tree sent, its hashes, the per-host steps (each takes one host's Target)."""

    def __init__(self, inv, root: pathlib.Path, force: bool, timeout, progress: report.Progress):
        self.inv, self.root, self.force, self.timeout, self.progress = inv, root, force, timeout, progress
        self.extra = inventory_excludes(inv, root)
        self.probes: dict = {}  # host -> what its read-only probe saw (launcher/workdirs.py)
        self.current: set = set()  # hosts whose remap library is already this deploy's (no build step)
        names = file_list(root, self.extra)
        self.digest = content_hash(root, names)
        self.sources = buildshare.sources_digest(root, names)

    def srun_args(self):
        """Slurm inventories with `build_on: compute`: srun options that build on one compute node."""
        slurm = self.inv.slurm
        if not self.inv.is_slurm or slurm.build_on != "compute":
            return None
        pairs = [("--partition", slurm.partition), ("--account", slurm.account), ("--qos", slurm.qos),
                 ("--constraint", slurm.constraint)]
        return [f"{k}={v}" for k, v in pairs if v is not None]

    def in_place(self, t) -> bool:
        return t.is_local and workdirs.same_dir(t.host.workdir, self.root)

    def sync(self, t, build: bool):
        """Probe, then sync: 'unchanged', 'deployed', or (to build) the host's build facts."""
        host = t.host
        self.progress.set(t.name, "connecting")
        probe = self.probes[t.name]
        if probe.get("unchanged") == "1":
            self.progress.set(t.name, "unchanged")
            return "unchanged"
        if self.in_place(t):  # this checkout itself: build here, record nothing
            if build:
                self.progress.set(t.name, "building remap")
                t.run_template("build.sh.j2", timeout=self.timeout, check=True, workdir=host.workdir,
                               venv=self.venv(host), hash=None, srun=self.srun_args(), key=None,
                               marker=MARKER)
            self.progress.set(t.name, "done")
            return "deployed"
        self.progress.set(t.name, "syncing")
        facts = buildshare.facts_of(probe)
        current = build and buildshare.current(facts, self.sources, t.name)  # the op needs no build here
        record = self.digest if current and not t.is_local else None   # then the sync records the deploy
        t.rsync_up(f"{self.root}/", HostPath(str(host.workdir).rstrip("/") + "/"), what="syncing the code",
                   args=["--delete", *workdirs.claiming_sync(t, record), *filter_args(self.extra)],
                   timeout=self.timeout)
        if build and not current:
            return facts
        if current:
            if t.is_local:  # a local sync records nothing by itself
                self.install(t, facts["lib"], False)
            self.current.add(t.name)
        self.progress.set(t.name, "done")
        return "deployed (remap unchanged)" if current else "deployed"

    def probe(self, t, build: bool) -> dict:
        """The read-only look at the workdir (and, to build, the host's build facts)."""
        self.probes[t.name] = workdirs.probe(t, facts=build, venv=self.venv(t.host),
                                             expect=None if self.force else self.digest)
        return self.probes[t.name]

    def venv(self, host):
        return self.inv.host_path(host, self.inv.paths.venv)

    def key(self, t) -> str:
        """The build key of this host's remap library (launcher/buildshare.py), from its probe."""
        return buildshare.build_key(self.probes[t.name], self.sources, t.name)

    def build(self, t) -> str:
        """make -C remap on this host and record the deploy; the sha256 of the library built."""
        self.progress.set(t.name, "building remap")
        done = t.run_template("build.sh.j2", timeout=self.timeout, check=True, workdir=t.host.workdir,
                              venv=self.venv(t.host), hash=self.digest, srun=self.srun_args(), key=self.key(t),
                              marker=MARKER)
        return remote.parse_kv(done.stdout).get("lib", "")

    def install(self, t, sha: str, incoming: bool) -> None:
        t.run_template("install_lib.sh.j2", timeout=60, check=True, workdir=t.host.workdir, sha=sha,
                       incoming=incoming, hash=self.digest, marker=MARKER, key=self.key(t))


def _guarded(progress: report.Progress, fn):
    def run(t, *args):
        try:
            return fn(t, *args)
        except remote.RemoteError as e:
            progress.set(t.name, f"failed: {e.kind}")
            raise
    return run


def deploy(inv, *, root: pathlib.Path = PACKAGE_ROOT, force: bool = False, build: bool = True,
           limit: int = remote.DEFAULT_LIMIT, timeout: float | None = 1800, adopt: bool = False,
           console: Console | None = None) -> list[remote.HostResult]:
    """Sync + build on every host of `inv`; one HostResult per host (value: 'unchanged', 'deployed',
    'deployed (built remap)', 'deployed (remap from HOST)' or 'deployed (remap unchanged)'). SSH hosts share one OpenSSH connection
    per host for every step; hosts with the same build key share one remap build (launcher/buildshare.py).
    Every workdir is probed first (read-only); one deploy must not replace is refused (UserError) before
    anything is written anywhere (launcher/workdirs.py)."""
    console = console or report.console()
    progress = report.Progress(inv.hosts, console)
    job = _Deploy(inv, pathlib.Path(root).resolve(), force, timeout, progress)
    with Multiplexer() as mux:
        ts = {h.name: mux.target(h) for h in inv.hosts}
        probes = remote.fan_out(list(ts.values()), lambda t: job.probe(t, build), limit=limit, timeout=120)
        syncing = [t for t in ts.values() if not job.in_place(t)]
        _refuse(inv, syncing, probes, adopt=adopt, force=force)
        if adopt:
            _show_deletions(console, syncing, probes, job.root, filter_args(job.extra))
        ok = [ts[r.host] for r in probes if r.ok]
        with report.live(progress, console):
            results = _sync_and_build(job, ok, build, limit, timeout, progress)
    results.update({r.host: r for r in probes if not r.ok})
    return [results[h.name] for h in inv.hosts]


def _sync_and_build(job, ts: list, build: bool, limit, timeout, progress) -> dict:
    first = remote.fan_out(ts, _guarded(progress, lambda t: job.sync(t, build)), limit=limit, timeout=timeout)
    by_name = {t.name: t for t in ts}
    results = {r.host: r for r in first}
    facts = {r.host: r.value for r in first if r.ok and isinstance(r.value, dict)}
    donors = {r.host: job.probes[r.host] for r in first if r.ok and r.host in job.current}
    if facts:
        donors.update(_unchanged_donors(job, [by_name[r.host] for r in first if r.ok and r.value == "unchanged"],
                                        limit))
        results.update(buildshare.share(by_name, facts, job.sources, _guarded(progress, job.build), job.install,
                                        progress, timeout, donors=donors))
    for name in facts:
        progress.set(name, "done" if results[name].ok else f"failed: {results[name].kind}")
    return results


def _unchanged_donors(job, unchanged: list, limit) -> dict:
    """An unchanged host answers its probe in one line, without build facts. When other hosts need the
    remap library, the unchanged ones are asked for their facts (read-only), so that a host joining an
    unchanged cluster takes a current library instead of compiling one; name -> facts of those current."""
    looks = remote.fan_out([t for t in unchanged if not job.in_place(t)],
                           lambda t: workdirs.probe(t, facts=True, venv=job.venv(t.host)), limit=limit, timeout=120)
    facts = {r.host: buildshare.facts_of(r.value) for r in looks if r.ok}
    return {name: f for name, f in facts.items() if buildshare.current(f, job.sources, name)}


def _refuse(inv, syncing: list, probes: list, *, adopt: bool, force: bool) -> None:
    ok = {r.host: r.value for r in probes if r.ok and r.value.get("unchanged") != "1"}  # nothing replaced there
    reasons = [workdirs.refusal(inv, t.host, ok[t.name], adopt=adopt, force=force) for t in syncing if t.name in ok]
    reasons = [r for r in reasons if r]
    if reasons:
        more = f" (and {len(reasons) - 1} more host(s) refused)" if len(reasons) > 1 else ""
        raise UserError(f"deploy refused, nothing was changed: {reasons[0]}{more}")


def _show_deletions(console, syncing: list, probes: list, root, filters) -> None:
    owned = {r.host for r in probes if r.ok and r.value.get("owned") == "1"}
    for t in syncing:
        if t.name in owned:
            continue
        names = workdirs.would_delete(t, str(root), filters)
        console.print(f"{t.name}: adopting {t.host.workdir}; --delete removes {len(names)} file(s)"
                      + (":" if names else ""), markup=False, highlight=False)
        for name in names:
            console.print(f"  {name}", markup=False, highlight=False)
