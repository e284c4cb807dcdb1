"""Preflight: one concurrent look at every host, as a hosts x checks table."""
from __future__ import annotations

import collections
import shutil

from rich.markup import escape

from launcher import layout, provision, remote

CHECKS = ("ssh", "workdir", "setup", "venv", "torch", "timm", "compiler", "rsync", "disk", "launcher", "data", "port")


def local_problems() -> list[str]:
    """What this machine lacks to deploy and copy checkpoints (rsync, ssh), as sentences."""
    return [f"{tool} is missing on this machine; install it (Debian/Ubuntu: apt-get install {package})"
            for tool, package in (("rsync", "rsync"), ("ssh", "openssh-client")) if shutil.which(tool) is None]


def run_checks(inv, min_free_gb: float = 2.0, limit: int = remote.DEFAULT_LIMIT, timeout: float = 120):
    """Returns (rows, ok): rows = host -> check -> (ok: bool|None, text)."""
    launcher = "torchrun" if inv.launcher == "torchrun" else "poprun"
    ts = remote.targets(inv.hosts)

    def one(t):
        host = t.host
        controller = host.name == inv.controller.name
        port = inv.network.master_port if controller and inv.launcher == "torchrun" else None
        t.connect()
        done = t.run_template("check.sh.j2", timeout=timeout, check=False, workdir=host.workdir,
                              venv=inv.host_path(host, inv.paths.venv), launcher=launcher,
                              data=inv.host_path(host, inv.paths.data), address=host.address, port=port)
        return remote.parse_kv(done.stdout)

    try:
        results = remote.fan_out(ts, one, limit=limit, timeout=timeout)
    finally:
        remote.close_all(ts)
    rows = {}
    versions = {k: collections.Counter(r.value.get(k) for r in results if r.ok and r.value.get(k))
                for k in ("torch", "timm")}
    for r in results:
        row = {c: (None, "") for c in CHECKS}
        if not r.ok:
            row["ssh"] = (False, f"{r.kind}: {r.error}")
            rows[r.host] = row
            continue
        kv = r.value
        row["ssh"] = (True, "local" if inv.host(r.host).connection == "local" else "key verified")
        row["workdir"] = (kv.get("workdir") == "ok", kv.get("workdir", "?"))
        row["setup"] = setup_state(inv, inv.host(r.host), kv)
        if "venv" in kv:
            row["venv"] = (kv["venv"] == "ok", kv["venv"])
        for k in ("torch", "timm"):
            v = kv.get(k)
            common = versions[k].most_common(1)[0][0] if versions[k] else None
            if not v:
                row[k] = (False, "not importable")
            elif len(versions[k]) > 1:
                row[k] = (False, f"{v} (hosts differ: {', '.join(sorted(versions[k]))})")
            else:
                row[k] = (True, v)
            del common
        row["compiler"] = (kv.get("compiler") == "ok", kv.get("compiler", "?"))
        row["rsync"] = (kv.get("rsync") == "ok", kv.get("rsync", "?"))
        free = kv.get("free_kb", "")
        if free.isdigit():
            gb = int(free) / 1024 / 1024
            row["disk"] = (gb >= min_free_gb, f"{gb:.1f} GB free")
        else:
            row["disk"] = (False, "unknown")
        row["launcher"] = (kv.get("launcher") == "ok", f"{launcher} {kv.get('launcher', '?')}")
        if "data" in kv:
            row["data"] = (kv["data"] == "ok", kv["data"])
        if "port" in kv:
            row["port"] = (kv["port"] == "free", f"{inv.network.master_port} {kv['port']}")
        rows[r.host] = row
    ok = all(cell[0] is not False for row in rows.values() for cell in row.values())
    return rows, ok


def setup_state(inv, host, kv: dict) -> tuple:
    """Whether `mae-launch setup` is up to date on the host (a failure only when the inventory has
    `setup:` commands or the host was set up before; otherwise a note)."""
    recorded = kv.get("setup_hash", "")
    if recorded and recorded == provision.expected_hash(inv, host, kv.get("base_python", "")):
        return True, "up to date"
    if recorded:
        return False, "needs setup (changed since the last one)"
    return (False if inv.spec.setup else None), "needs setup (never run)"


def grid(rows: dict) -> layout.Grid:
    """The hosts x checks grid (a table when it fits, one block per host when it does not)."""
    g = layout.Grid("preflight", ["host", *CHECKS])
    for host, row in rows.items():
        cells = []
        for c in CHECKS:
            ok, text = row[c]
            text = escape(text)
            if ok is None:
                cells.append(f"[dim]{text}[/]" if text else "-")
            else:
                cells.append(f"[green]✓[/] {text}" if ok else f"[red]✗ {text}[/]")
        g.add(escape(host), *cells)
    return g


def records(rows: dict, ok: bool) -> dict:
    """Machine-readable results: {"ok", "hosts": {host: {check: {"ok": true|false|null, "text"}}}}."""
    return {"ok": ok, "hosts": {host: {c: {"ok": cell[0], "text": cell[1]} for c, cell in row.items()}
                                for host, row in rows.items()}}
