"""Set hosts up: the inventory's `setup:` commands, then `paths.venv` with the pinned requirements.

Each `setup:` line is a shell line written by the inventory's author, rendered as a template (the
`q` filter and `host`, `workdir`, `venv`, `python` are available). After the commands, the venv is
created when missing and the requirements are installed into it: by default with the host's own
pip (its index and cache); with a wheelhouse, from wheels downloaded once here and synced to the
host (`pip install --no-index`). A sha256 of the rendered commands, the requirements and the host's
Python version is recorded in `<workdir>/.mae-launch-setup` (launcher/ownfiles.py) only when all of it succeeded, so an
unchanged host costs one command, and `check` can tell which hosts need setup.
"""
from __future__ import annotations

import hashlib
import pathlib
import subprocess
import sys

from rich.console import Console

from launcher import ownfiles, remote, report
from launcher.errors import UserError
from launcher.provision import PYTHON, commands, requirements_text, setup_hash

WHEELS_ON_HOST = ownfiles.WHEELS


def download_wheels(requirements: str, root: pathlib.Path) -> pathlib.Path:
    """Download the wheels of `requirements` once into root/<hash>/ (kept for later setups)."""
    folder = root / hashlib.sha256(requirements.encode()).hexdigest()[:16]
    if (folder / ".complete").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    req = folder / "requirements.txt"
    req.write_text(requirements + "\n")
    p = subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet",
                        "-r", str(req), "-d", str(folder)], capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        raise UserError(f"downloading the wheels into {folder} failed: {remote.tail(p.stderr, 3)}")
    (folder / ".complete").write_text("")
    return folder


def _one_host(inv, t, progress, requirements: str, wheels, force: bool, timeout: float) -> str:
    host = t.host
    venv = inv.host_path(host, inv.paths.venv)
    progress.set(t.name, "connecting")
    probe = remote.parse_kv(t.run_template("setup_probe.sh.j2", timeout=60, check=True, workdir=host.workdir,
                                           venv=venv, python=PYTHON, marker=ownfiles.SETUP_MARKER).stdout)
    if not probe.get("python"):
        raise remote.RemoteError(t.name, "failed", f"{PYTHON} is not installed on this host")
    rendered = commands(inv, host)
    digest = setup_hash(rendered, requirements, probe["python"])
    if probe.get("hash") == digest and probe.get("venv") == "ok" and not force:
        progress.set(t.name, "unchanged")
        return "unchanged"
    wheelhouse = None
    if wheels is not None:
        progress.set(t.name, "syncing wheels")
        wheelhouse = type(host.workdir)(f"{host.workdir}/{WHEELS_ON_HOST}")
        t.rsync_up(f"{wheels}/", type(host.workdir)(f"{wheelhouse}/"), what="syncing the wheels", timeout=timeout)
    progress.set(t.name, "setting up")
    t.run_template("setup.sh.j2", timeout=timeout, check=True, workdir=host.workdir, venv=venv, python=PYTHON,
                   commands=rendered, requirements=requirements, wheelhouse=wheelhouse, hash=digest,
                   marker=ownfiles.SETUP_MARKER, requirements_file=ownfiles.SETUP_REQUIREMENTS)
    progress.set(t.name, "done")
    return "set up"


def setup(inv, *, force: bool = False, wheelhouse: pathlib.Path | None = None, limit: int = remote.DEFAULT_LIMIT,
          timeout: float = 3600, console: Console | None = None) -> list[remote.HostResult]:
    """Set up every host of `inv`; one HostResult per host (value: 'unchanged' | 'set up')."""
    console = console or Console()
    if not inv.paths.venv:
        raise UserError(f"{inv.source_path}: paths.venv is not set: setup needs the venv to create")
    requirements = requirements_text(inv)
    for host in inv.hosts:
        commands(inv, host)  # a bad template is bad input, caught before any host is touched
    wheels = download_wheels(requirements, wheelhouse) if wheelhouse is not None else None
    ts = remote.targets(inv.hosts)
    progress = report.Progress(inv.hosts, console, title="setup")

    def guarded(t):
        try:
            return _one_host(inv, t, progress, requirements, wheels, force, timeout)
        except remote.RemoteError as e:
            progress.set(t.name, f"failed: {e.kind}")
            raise

    try:
        with report.live(progress, console):
            return remote.fan_out(ts, guarded, limit=limit, timeout=timeout + 120)
    finally:
        remote.close_all(ts)
