"""Compile once: hosts whose remap build would be the same share one build.

A build depends on the remap sources (the same everywhere after a sync), the CPU architecture, the
compiler, the Python and torch of the host's venv, whether CUDA kernels are built and the libjpeg-turbo
headers that decide whether the JPEG crop decoder is compiled in (and the library then links libjpeg). Hosts are grouped
by a key over those facts (templates/build_facts.sh.j2). In each group one host runs `make -C remap`;
the others receive its library, relayed through this machine by rsync and checked by sha256 on arrival
(templates/install_lib.sh.j2). A host whose facts are not all known builds for itself.
"""
from __future__ import annotations

import hashlib
import pathlib
import tempfile

from launcher import remote

FACTS = ("arch", "cxx", "python", "torch", "cuda", "jpeg")
LIB = "remap/remap_ops.so"


def sources_digest(root: pathlib.Path, names: list) -> str:
    """sha256 over the remap files among `names` (paths relative to `root`, as deploy sends them)."""
    h = hashlib.sha256()
    for name in sorted(n for n in names if n.startswith("remap/") and (root / n).is_file()):
        h.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return h.hexdigest()


def build_key(facts: dict, sources: str, host: str) -> str:
    """The key of a host's build; a host with an unknown fact gets a key of its own."""
    if not all(facts.get(k) for k in FACTS if k != "cuda"):
        return f"own:{host}"
    return hashlib.sha256("\0".join([sources] + [facts.get(k, "") for k in FACTS]).encode()).hexdigest()


def facts_of(probe: dict) -> dict:
    """The build facts, library sha256 and recorded build key among a workdir probe's answers."""
    return {k: probe.get(k, "") for k in (*FACTS, "lib", "libkey")}


def current(facts: dict, sources: str, host: str) -> bool:
    """Is the host's library the one this deploy would build? Its recorded build key (written with the
    library by templates/build.sh.j2 and install_lib.sh.j2) names this deploy's key and its sha256."""
    key = build_key(facts, sources, host)
    lib = facts.get("lib", "")
    return bool(lib) and not key.startswith("own:") and facts.get("libkey", "") == f"{key} {lib}"


def groups(facts: dict, sources: str) -> list[list[str]]:
    """Host names grouped by build key, in the order given; the first of each group builds."""
    out: dict[str, list] = {}
    for name, f in facts.items():
        out.setdefault(build_key(f, sources, name), []).append(name)
    return list(out.values())


def _relay(leader: remote.Target, lib_sha: str, followers: list, install, timeout) -> list:
    """Copy the leader's library to each follower that lacks it; results per follower."""
    with tempfile.TemporaryDirectory(prefix="mae-launch-remap-") as tmp:
        local = pathlib.Path(tmp) / "remap_ops.so"
        leader.rsync_down(f"{leader.host.workdir}/{LIB}", local, what="fetching the remap build", timeout=timeout)
        if hashlib.sha256(local.read_bytes()).hexdigest() != lib_sha:
            raise remote.RemoteError(leader.name, "failed", "the remap library changed while it was fetched")

        def push(t):
            t.rsync_up(local, f"{t.host.workdir}/{LIB}.incoming", what="sending the remap build", timeout=timeout)
            install(t, lib_sha, True)
            return f"deployed (remap from {leader.name})"

        return remote.fan_out(followers, push, timeout=timeout)


def share(ts: dict, facts: dict, sources: str, build, install, progress, timeout=None,
          donors: dict | None = None) -> dict:
    """Build once per group and give the others the library.

    `facts`: the hosts that need a library (name -> build facts); `donors`: hosts whose library is
    already current (name -> facts with `lib`): a group with a donor builds nothing and takes the
    donor's library. build(t) -> lib sha256 builds on host t (and records the deploy there);
    install(t, sha, incoming) puts a received library in place (incoming) or only records the deploy.
    `ts`: name -> Target for every host named. Returns name -> HostResult for the hosts of `facts`."""
    plan = groups(facts, sources)
    have: dict = {}
    for name, f in (donors or {}).items():  # the first current host of each build key gives its library
        have.setdefault(build_key(f, sources, name), name)
    builders = [g[0] for g in plan if build_key(facts[g[0]], sources, g[0]) not in have]
    results = {r.host: r for r in remote.fan_out([ts[n] for n in builders], build, timeout=timeout)}
    shas = {name: r.value for name, r in results.items()}
    for group in plan:
        donor = have.get(build_key(facts[group[0]], sources, group[0]))
        if donor is not None:
            leader, followers = remote.HostResult(donor, True, donors[donor]["lib"]), group
        else:
            leader, followers = results[group[0]], group[1:]
        results.update(_follow(ts, leader, [ts[n] for n in followers], facts, install, progress, timeout))
    for name, sha in shas.items():
        if results[name].ok:
            results[name].value = "deployed (built remap)"
    return results


def _follow(ts: dict, leader, followers: list, facts: dict, install, progress, timeout) -> dict:
    """Results of the hosts that take the leader's library: those holding it already only record the
    deploy; the others receive it (or fail with the leader)."""
    if not followers:
        return {}
    if not leader.ok:
        return {t.name: remote.HostResult(t.name, False, None, f"the build on {leader.host} failed", "failed")
                for t in followers}
    results = {}
    have = [t for t in followers if facts[t.name].get("lib") == leader.value]

    def record(t, sha=leader.value):
        install(t, sha, False)
        return "deployed (remap unchanged)"

    for r in remote.fan_out(have, record, timeout=timeout):
        results[r.host] = r
    need = [t for t in followers if t not in have]
    for t in need:
        progress.set(t.name, f"receiving remap from {leader.host}")
    if need:
        try:
            for r in _relay(ts[leader.host], leader.value, need, install, timeout):
                results[r.host] = r
        except remote.RemoteError as e:
            for t in need:
                results[t.name] = remote.HostResult(t.name, False, None, e.message, e.kind, e.tail)
    return results
