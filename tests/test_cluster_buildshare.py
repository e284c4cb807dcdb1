"""Compile once on the real sshd cluster: hosts with the same build key share one remap build.

The project sent is a small stand-in tree whose remap/Makefile records each build it runs, so the test
sees exactly which hosts compiled; the library travels from the building host to the others and is
checked by sha256 on arrival.
"""
import hashlib

import pytest

from cluster_fixtures import run_cli, tiny_jobs
from launcher import buildshare

LOG = "remap/build/builds.log"  # remap/build/ is never synced, so --delete leaves it
MAKEFILE = """\
remap_ops.so: remap_ops/op.cpp
\tcat remap_ops/op.cpp > remap_ops.so
\tuname -m >> remap_ops.so
\tmkdir -p build && echo built >> build/builds.log
"""


def _project(tmp_path, version: str):
    src = tmp_path / "project"
    (src / "remap" / "remap_ops").mkdir(parents=True, exist_ok=True)
    (src / "remap" / "Makefile").write_text(MAKEFILE)
    (src / "remap" / "remap_ops" / "op.cpp").write_text(f"// op {version}\n")
    (src / "README.md").write_text(f"stand-in project {version}\n")
    return src


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _hosts(cluster, tmp_path, prefix: str):
    """The cluster's hosts, each with a workdir of this test's own; (inventory hosts, workdirs)."""
    hosts = cluster.inventory_data()["hosts"]
    workdirs = [cluster.hosts[i].dir / f"{prefix}-{tmp_path.name}" for i in range(len(hosts))]
    for h, w in zip(hosts, workdirs):
        h["workdir"] = str(w)
    return hosts, workdirs


def _builds(workdirs) -> list:
    """How many times each workdir's remap/Makefile compiled."""
    return [(w / LOG).read_text().count("built") if (w / LOG).exists() else 0 for w in workdirs]


@pytest.mark.cluster
def test_three_hosts_compile_once_and_receive_the_library(cluster, tmp_path):
    hosts, workdirs = _hosts(cluster, tmp_path, "stub")
    inv = cluster.write_inventory(tmp_path / "inv.yml", hosts=hosts, jobs=tiny_jobs())
    src = _project(tmp_path, "v1")

    p = run_cli(["deploy", "-i", inv, "--source", src], timeout=300, check=0)
    assert _builds(workdirs) == [1, 0, 0], p.stdout       # one host compiled
    libs = [w / "remap" / "remap_ops.so" for w in workdirs]
    assert len({_sha(lib) for lib in libs}) == 1          # the others hold the same library
    assert p.stdout.count("remap from host0") == 2 and "built remap" in p.stdout
    assert all((w / ".mae-launch-deploy").read_text().strip() for w in workdirs)
    assert not any((w / "remap" / "remap_ops.so.incoming").exists() for w in workdirs)

    p = run_cli(["deploy", "-i", inv, "--source", src], timeout=300, check=0)  # nothing changed
    assert p.stdout.count("unchanged") >= 3 and (workdirs[0] / LOG).read_text().count("built") == 1

    (src / "README.md").write_text("a change outside remap\n")   # code changes, the op does not
    p = run_cli(["deploy", "-i", inv, "--source", src], timeout=300, check=0)
    assert p.stdout.count("remap unchanged") == 3, p.stdout  # every library is current: no build step
    assert (workdirs[0] / LOG).read_text().count("built") == 1  # make found nothing to do

    (src / "remap" / "remap_ops" / "op.cpp").write_text("// op v2\n")     # the op changes
    p = run_cli(["deploy", "-i", inv, "--source", src], timeout=300, check=0)
    assert (workdirs[0] / LOG).read_text().count("built") == 2
    assert len({_sha(lib) for lib in libs}) == 1 and b"op v2" in libs[2].read_bytes()


def _third_host_joins(cluster, tmp_path, prefix: str, between=None):
    """Deploy to host0 and host1, call between(src, workdirs), then deploy to all three; (result, workdirs)."""
    hosts, workdirs = _hosts(cluster, tmp_path, prefix)
    src = _project(tmp_path, "v1")
    two = cluster.write_inventory(tmp_path / "two.yml", hosts=hosts[:2], jobs=tiny_jobs())
    run_cli(["deploy", "-i", two, "--source", src], timeout=300, check=0)
    if between is not None:
        between(src, workdirs)
    three = cluster.write_inventory(tmp_path / "three.yml", hosts=hosts, jobs=tiny_jobs())
    return run_cli(["deploy", "-i", three, "--source", src], timeout=300, check=0), workdirs


@pytest.mark.cluster
def test_a_host_that_joins_takes_the_library_of_a_current_host(cluster, tmp_path):
    def key_recorded_then_change(src, workdirs):
        key = (workdirs[1] / "remap" / "remap_ops.so.key").read_text().split()
        assert key[1] == _sha(workdirs[1] / "remap" / "remap_ops.so")  # the build key is recorded with the library
        (src / "README.md").write_text("a change outside remap\n")

    p, workdirs = _third_host_joins(cluster, tmp_path, "join", key_recorded_then_change)
    assert p.stdout.count("remap unchanged") == 2 and "remap from host0" in p.stdout, p.stdout
    assert _builds(workdirs) == [1, 0, 0], p.stdout  # nobody compiled again: host2 received host0's library
    assert _sha(workdirs[2] / "remap" / "remap_ops.so") == _sha(workdirs[0] / "remap" / "remap_ops.so")


@pytest.mark.cluster
def test_a_host_joining_an_unchanged_cluster_takes_a_current_library(cluster, tmp_path):
    p, workdirs = _third_host_joins(cluster, tmp_path, "quiet")  # the code did not change
    # each host's last line: its row of the result table (below the progress table)
    rows = {name: line for line in p.stdout.splitlines() for name in ("host0", "host1", "host2") if f" {name} " in line}
    assert "unchanged" in rows["host0"] and "unchanged" in rows["host1"], p.stdout
    assert "deployed (remap from host0)" in rows["host2"], p.stdout
    assert _builds(workdirs) == [1, 0, 0], p.stdout  # host2 received host0's library instead of compiling
    assert _sha(workdirs[2] / "remap" / "remap_ops.so") == _sha(workdirs[0] / "remap" / "remap_ops.so")


def test_build_keys_group_only_identical_builds():
    base = {"arch": "x86_64", "cxx": "g++ 12.2", "python": "python3.11", "torch": "torch-2.14.1.dist-info",
            "cuda": "0", "jpeg": "2001005"}
    facts = {"a": base, "b": dict(base), "c": dict(base, arch="aarch64"), "d": dict(base, torch=""),
             "e": dict(base, cuda="1"), "f": dict(base), "g": dict(base, jpeg="none"), "h": dict(base, jpeg="")}
    # g: no libjpeg-turbo headers, so no crop decoder (and no libjpeg to link); h: unknown, builds itself
    assert buildshare.groups(facts, "src1") == [["a", "b", "f"], ["c"], ["d"], ["e"], ["g"], ["h"]]
    assert buildshare.build_key(base, "src1", "a") != buildshare.build_key(base, "src2", "a")
    assert buildshare.build_key(facts["d"], "src1", "d").startswith("own:")  # unknown torch: builds itself
