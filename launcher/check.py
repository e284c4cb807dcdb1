"""Preflight: one concurrent look at every host, as a hosts x checks table.

Every inventory gets the base checks (ssh, workdir, setup, venv, torch, timm, compiler, rsync, disk,
launcher, data, port). A poprun inventory also gets the Poplar SDK checks, each one column:

* ``sdk``: every ``paths.sdk_enable`` script exists and sources without error;
* ``poptorch`` / ``popdist``: importable after that, with versions equal on every host;
* ``poprun``: ``poprun --version``;
* ``vipu`` (controller): the V-IPU server answers ``vipu --server-version``;
* ``partitions`` (controller): each job's partition, read with ``vipu get partition NAME``, is
  present with the IPUs the job needs, or absent / of another size with ``update: true`` (poprun
  creates or resizes it).
"""
from __future__ import annotations

import collections
import re
import shutil

from rich.markup import escape

from launcher import layout, provision, remote, rendezvous
from launcher.errors import UserError
from launcher.plan import host_address

CHECKS = ("ssh", "workdir", "setup", "venv", "torch", "timm", "compiler", "rsync", "disk", "launcher", "data", "port")
IPU_CHECKS = ("sdk", "poptorch", "popdist", "poprun", "vipu", "partitions")
_SAME_EVERYWHERE = ("torch", "timm", "poptorch", "popdist")


def local_problems() -> list[str]:
    """What this machine lacks to deploy and copy checkpoints (rsync, ssh), as sentences."""
    return [f"{tool} is missing on this machine; install it (Debian/Ubuntu: apt-get install {package})"
            for tool, package in (("rsync", "rsync"), ("ssh", "openssh-client")) if shutil.which(tool) is None]


def _template_args(inv, host, launcher: str, addr: str) -> dict:
    controller = host.name == inv.controller.name
    args = dict(workdir=host.workdir, venv=inv.host_path(host, inv.paths.venv), launcher=launcher,
                data=inv.host_path(host, inv.paths.data), address=addr or host.address,
                port=inv.network.master_port if controller and inv.launcher == "torchrun" else None,
                sdk_enable=None, vipu=None, setup_marker=provision.MARKER)
    if inv.launcher == "poprun":
        args["sdk_enable"] = [inv.host_path(host, s) for s in inv.paths.sdk_enable]
        if controller and inv.cluster is not None:
            args["vipu"] = {"host": inv.cluster.vipu_server_host, "port": inv.cluster.vipu_server_port or 8090,
                            "partitions": sorted(needed_partitions(inv))}
    return args


def needed_partitions(inv) -> dict:
    """partition name -> IPUs the inventory's jobs need there (replicas x IPUs per replica)."""
    out = {}
    for job in inv.jobs.values():
        if job.partition:
            out[job.partition] = max(out.get(job.partition, 0), (job.replicas or 0) * (job.ipus_per_replica or 0))
    return out


def run_checks(inv, min_free_gb: float = 2.0, limit: int = remote.DEFAULT_LIMIT, timeout: float = 120):
    """Returns (rows, ok): rows = host -> check -> (ok: bool|None, text)."""
    launcher = "torchrun" if inv.launcher == "torchrun" else "poprun"
    ts = remote.targets(inv.hosts)
    probed = {}
    try:
        addr = _rendezvous_address(inv, next(t for t in ts if t.name == inv.controller.name))

        def one(t):
            t.connect()
            done = t.run_template("check.sh.j2", timeout=timeout, check=False,
                                  **_template_args(inv, t.host, launcher, addr))
            return remote.parse_kv(done.stdout)

        results = remote.fan_out(ts, one, limit=limit, timeout=timeout)
        free = [r for r in results if r.ok and r.host == inv.controller.name and r.value.get("port") == "free"]
        if addr and free and len(ts) > 1:  # a listener on the free port, knocked on from every host
            probed = rendezvous.probe(inv, {t.name: t for t in ts}, addr, timeout=timeout)
    finally:
        remote.close_all(ts)
    versions = {k: collections.Counter(r.value.get(k) for r in results if r.ok and r.value.get(k))
                for k in _SAME_EVERYWHERE}
    names = (CHECKS + (IPU_CHECKS if inv.launcher == "poprun" else ()) + (("rendezvous",) if addr else ())
             + (("remap",) if inv.is_slurm else ()))
    rows = {}
    for r in results:
        row = {c: (None, "") for c in names}
        if addr:
            row["rendezvous"] = probed.get(r.host, (None, "not probed (the port is not free)"))
        if not r.ok:
            row["ssh"] = (False, f"{r.kind}: {r.error}")
        else:
            row.update(_base_row(inv, r.host, r.value, versions, launcher, min_free_gb))
            if inv.launcher == "poprun":
                row.update(_ipu_row(inv, r.value, versions))
        rows[r.host] = row
    ok = all(cell[0] is not False for row in rows.values() for cell in row.values())
    return rows, ok


def _rendezvous_address(inv, controller) -> str:
    """The address torchrun's ranks will meet at ("" for poprun or one host); a controller that cannot
    say its interface's address leaves it to the rendezvous cell."""
    if inv.launcher != "torchrun" or len(inv.hosts) < 2:
        return ""
    try:
        return rendezvous.address(inv, controller)
    except UserError:
        return inv.network.master_addr or host_address(inv.controller)


def _same(kv: dict, key: str, versions: dict, missing: str = "not importable"):
    v = kv.get(key)
    if not v:
        return (False, missing)
    if len(versions[key]) > 1:
        return (False, f"{v} (hosts differ: {', '.join(sorted(versions[key]))})")
    return (True, v)


def _compiler(kv: dict):
    """remap's compiler; a host without libjpeg-turbo's headers builds remap without the JPEG crop
    decoder (its pretraining decodes whole JPEGs): said, not failed."""
    if kv.get("compiler") != "ok":
        return (False, kv.get("compiler", "?"))
    return (True, "ok, no libjpeg-dev" if kv.get("jpeg") == "none" else "ok")


def _base_row(inv, host: str, kv: dict, versions: dict, launcher: str, min_free_gb: float) -> dict:
    row = {"ssh": (True, "local" if inv.host(host).connection == "local" else "key verified"),
           "workdir": (kv.get("workdir") == "ok", kv.get("workdir", "?")),
           "torch": _same(kv, "torch", versions), "timm": _same(kv, "timm", versions),
           "compiler": _compiler(kv),
           "rsync": (kv.get("rsync") == "ok", kv.get("rsync", "?")),
           "setup": setup_state(inv, inv.host(host), kv),
           "launcher": (kv.get("launcher") == "ok", f"{launcher} {kv.get('launcher', '?')}")}
    if "venv" in kv:
        row["venv"] = (kv["venv"] == "ok", kv["venv"])
    free = kv.get("free_kb", "")
    row["disk"] = (int(free) / 1024 / 1024 >= min_free_gb, f"{int(free) / 1024 / 1024:.1f} GB free") \
        if free.isdigit() else (False, "unknown")
    if "data" in kv:  # the path it looked for, so a ✗ says which
        path = inv.host_path(inv.host(host), inv.paths.data)
        row["data"] = (True, "ok") if kv["data"] == "ok" else (False, f"{path} not found")
    if "port" in kv:
        row["port"] = (kv["port"] == "free", f"{inv.network.master_port} {kv['port']}")
    if inv.is_slurm:
        row["remap"] = remap_kernels(inv, kv.get("remap", ""))
    return row


def remap_kernels(inv, built: str) -> tuple:
    """Slurm: which kernels the shared remap build has; CPU-only where the nodes have GPUs fails (the
    build ran where there is no GPU or nvcc: training would silently take the plain path)."""
    if built == "cuda":
        return (True, "CPU and CUDA kernels")
    if built == "cpu":
        if inv.slurm.gpus_per_node:
            return (False, "CPU kernels only, but the nodes have GPUs: deploy with slurm.build_on: compute")
        return (True, "CPU kernels")
    return (None, "not built (mae-launch deploy)")


def _ipu_row(inv, kv: dict, versions: dict) -> dict:
    sdk = kv.get("sdk", "")
    poprun = kv.get("poprun_version", "")
    row = {"sdk": (sdk == "ok", sdk or "not checked") if inv.paths.sdk_enable else (None, "no paths.sdk_enable"),
           "poptorch": _same(kv, "poptorch", versions, "not importable (SDK enabled? poptorch wheel installed?)"),
           "popdist": _same(kv, "popdist", versions, "not importable"),
           "poprun": (bool(poprun), poprun or "poprun --version failed")}
    if "vipu" in kv:
        row["vipu"] = (kv["vipu"].startswith("ok"), kv["vipu"])
        row["partitions"] = partitions_cell(inv, kv)
    return row


_IPUS = re.compile(r"(?i)\b(?:size|ipus|num[-_ ]?ipus)\b\D{0,8}(\d+)")


def partition_ipus(text: str):
    """The IPU count in the output of ``vipu get partition NAME`` (None when not found)."""
    m = _IPUS.search(text or "")
    return int(m.group(1)) if m else None


def partitions_cell(inv, kv: dict):
    """One cell for every partition the jobs use: present with enough IPUs, or creatable under update."""
    problems, notes = [], []
    for name, needed in sorted(needed_partitions(inv).items()):
        spec = inv.partitions.get(name)
        update = bool(getattr(spec, "update", True))
        state = kv.get(f"partition.{name}", "")
        have = partition_ipus(state[len("ok "):]) if state.startswith("ok") else None
        if have == needed:
            notes.append(f"{name} {have} IPUs")
        elif update:
            notes.append(f"{name} {'absent' if not state.startswith('ok') else f'{have} IPUs'}: poprun "
                         f"{'creates' if not state.startswith('ok') else 'resizes'} it ({needed} IPUs, update)")
        else:
            problems.append(f"{name} {'absent' if not state.startswith('ok') else f'has {have} IPUs'}, jobs need "
                            f"{needed} and update is false")
    if problems:
        return (False, "; ".join(problems))
    return (True, "; ".join(notes) or "no partition used")


def setup_state(inv, host, kv: dict) -> tuple:
    """Whether `mae-launch setup` is up to date on the host (a failure only when the inventory has
    `setup:` commands or the host was set up before; otherwise a note)."""
    recorded = kv.get("setup_hash", "")
    if recorded and recorded == provision.expected_hash(inv, host, kv.get("base_python", "")):
        return True, "up to date"
    if recorded:
        return False, "needs setup (changed since the last one)"
    return (False if inv.spec.setup.commands else None), "needs setup (never run)"


def grid(rows: dict) -> layout.Grid:
    """The hosts x checks grid (a table when it fits, one block per host when it does not)."""
    columns = list(next(iter(rows.values()))) if rows else list(CHECKS)
    g = layout.Grid("preflight", ["host", *columns])
    for host, row in rows.items():
        cells = []
        for c in columns:
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
