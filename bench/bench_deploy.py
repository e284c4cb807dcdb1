"""Deploy against the lean parallel OpenSSH loop, on the loopback sshd cluster (tests/cluster.py).

For each host count (default 8 and 32), in one run:
  - fresh: workdirs emptied of everything but the remap build of an earlier deploy (library, objects
    and the build key recorded with the library), then `mae-launch deploy` and, on identical workdirs,
    the baseline: `xargs -P N` over bench/lean_deploy.sh (OpenSSH rsync of the project, then
    `make -C remap` over ssh);
  - no-change: both again, on the deployed workdirs.
mae-launch is timed twice in each case: with the connections the previous deploy kept (a deploy a
moment ago, as in an edit-and-redeploy loop; control_persist) and with new connections
(control_persist: 0), both against the same baseline.
Then a cold deploy (no remap build anywhere) to 1 host and to 3 hosts. Last, the fresh and no-change
figures again on --plain-login-hosts hosts whose login shell reads no ~/.bashrc (tests/cluster.py
plain_login): every SSH command of both tools runs the login user's shell, and this machine's root
~/.bashrc (pyenv init) costs each command about 0.15 s of CPU; these rows show what is left without it.
Figures are the best of --repeat runs; ratios are mae-launch / baseline (below 1: mae-launch faster).

Usage: .venv/bin/python bench/bench_deploy.py [--hosts 8,32] [--repeat 2] [--no-cold] [--plain-login-hosts 8]
                                             [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from cluster import Cluster  # noqa: E402
from cluster_fixtures import prepare_source, seed_remap_build  # noqa: E402

CLI = [str(ROOT / ".venv" / "bin" / "python"), "-m", "launcher"]
VENV = ROOT / ".venv"


def _timed(argv, **kw) -> float:
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, **kw)
    took = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return took


BUILD = ("remap/remap_ops.so", "remap/remap_ops.so.key", "remap/build")  # what a deploy built


def _keep_build(workdir: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """Copy the remap build a deploy left in `workdir` to `dest` (mtimes kept)."""
    for rel in BUILD:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", str(workdir / rel), str(dest / rel)], check=True)
    return dest


def _reset(hosts, seed: bool, build: pathlib.Path | None = None) -> None:
    """Empty workdirs; with `seed`, holding `build` (what _keep_build kept) or, without one, this
    checkout's own remap build products."""
    for h in hosts:
        shutil.rmtree(h.workdir, ignore_errors=True)
        h.workdir.mkdir(parents=True)
        if seed and build is not None:
            subprocess.run(["cp", "-a", f"{build}/.", str(h.workdir)], check=True)
            (h.workdir / ".mae-launch-workdir").touch()  # deploy's marker: the workdir is mae-launch's
        elif seed:
            seed_remap_build(h.workdir)


def _deploy(inv) -> float:
    return _timed(CLI + ["deploy", "-i", str(inv), "--source", str(SRC)],
                  env=dict(os.environ, COLUMNS="200"))


def _lean(cluster, hosts, table: pathlib.Path) -> float:
    table.write_text("".join(f"{h.address} {h.port} {cluster.client_key} {cluster.known_hosts} {SRC} "
                             f"{h.workdir} {VENV}\n" for h in hosts))
    with open(table) as f:
        return _timed(["xargs", "-P", str(len(hosts)), "-L", "1", "bash", str(ROOT / "bench" / "lean_deploy.sh")],
                      stdin=f)


def _pair(cluster, hosts, invs: dict, tmp, repeat: int) -> dict:
    """Fresh and no-change figures of mae-launch, with the connections a deploy keeps (`kept`: the last
    deploy was seconds ago, as in an edit-and-redeploy loop) and with new ones (`new`: control_persist 0),
    and of the lean loop, interleaved; best of `repeat`."""
    times: dict = {}
    _reset(hosts, seed=True)
    _deploy(invs["kept"])  # a deploy a moment ago: its connections are kept for control_persist (60 s)
    build = _keep_build(hosts[0].workdir, tmp / f"build{len(hosts)}")
    for label, fresh in (("fresh", True), ("no-change", False)):
        for _ in range(repeat):
            for who in ("kept", "new", "lean"):
                if fresh:
                    _reset(hosts, seed=True, build=build)
                secs = _lean(cluster, hosts, tmp / "hosts.txt") if who == "lean" else _deploy(invs[who])
                times.setdefault((label, who), []).append(secs)
            if fresh:  # leave deployed workdirs for the no-change pass
                _reset(hosts, seed=True, build=build)
                _deploy(invs["kept"])
    out = {}
    for label in ("fresh", "no-change"):
        lean = min(times[(label, "lean")])
        out[label] = {"mae-launch": min(times[(label, "kept")]), "lean": lean}
        out[f"{label}, new connections"] = {"mae-launch": min(times[(label, "new")]), "lean": lean}
    return out


def _cold(cluster, tmp) -> dict:
    data = cluster.inventory_data()["hosts"]
    res = {}
    for n in (1, 3):
        hosts = cluster.hosts[:n]
        _reset(hosts, seed=False)
        inv = cluster.write_inventory(tmp / f"cold{n}.yml", hosts=data[:n])
        res[n] = _deploy(inv)
        print(f"cold deploy to {n} host(s): {res[n]:.1f} s", flush=True)
    return res


def _inventories(cluster, tmp, n: int) -> dict:
    """Inventories of the first n hosts: `kept` (control_persist as configured) and `new` (0)."""
    data = cluster.inventory_data()["hosts"][:n]
    return {"kept": cluster.write_inventory(tmp / f"inv{n}.yml", hosts=data),
            "new": cluster.write_inventory(tmp / f"new{n}.yml", hosts=[dict(h, control_persist=0) for h in data])}


def _print(n: int, figures: dict, what: str = "") -> None:
    for label, v in figures.items():
        print(f"{n:3d} hosts{what} {label:<26}  mae-launch {v['mae-launch']:6.2f} s   lean loop {v['lean']:6.2f} s"
              f"   ratio {v['mae-launch'] / v['lean']:.2f}", flush=True)


def _plain_login(tmp, n: int, repeat: int) -> dict:
    """The fresh and no-change pair on n hosts whose sessions skip ~/.bashrc: {n: figures}."""
    work = tmp / "plain"  # its own inventories and kept build, beside the first cluster's
    cluster = Cluster(work / "cluster", n, plain_login=True).up()
    try:
        figures = _pair(cluster, cluster.hosts, _inventories(cluster, work, n), work, repeat)
    finally:
        cluster.down()
    _print(n, figures, ", plain login shell,")
    return {n: figures}


def main() -> int:
    global SRC
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", default="8,32")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--plain-login-hosts", type=int, default=8, metavar="N",
                    help="also measure N hosts whose login shell reads no ~/.bashrc (0: not)")
    ap.add_argument("--json", default=None, help="also write the figures to this file")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = [int(x) for x in args.hosts.split(",")]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    cluster = Cluster(tmp / "cluster", max(sizes + [3])).up()
    figures = {"cpus": os.cpu_count(), "load": os.getloadavg()[0], "deploy": {}}
    try:
        SRC = prepare_source(tmp / "source")
        for n in sizes:
            figures["deploy"][n] = _pair(cluster, cluster.hosts[:n], _inventories(cluster, tmp, n), tmp, args.repeat)
            _print(n, figures["deploy"][n])
        if not args.no_cold:
            figures["cold"] = _cold(cluster, tmp)
            print(f"cold deploy 3 hosts / 1 host: {figures['cold'][3] / figures['cold'][1]:.2f}")
    finally:
        cluster.down()
    try:
        if args.plain_login_hosts:
            figures["plain_login"] = _plain_login(tmp, args.plain_login_hosts, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


SRC = pathlib.Path()

if __name__ == "__main__":
    sys.exit(main())
