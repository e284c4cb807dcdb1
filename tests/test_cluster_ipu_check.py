"""`mae-launch check` of a poprun inventory on the loopback cluster, with a stand-in Poplar SDK: an
enable script putting stand-in `poprun`, `vipu` and poptorch/popdist modules on the path. Checks
that each SDK check is one row cell and that a partition the jobs need but cannot get fails."""
import os
import pathlib
import stat

import pytest

from cluster_fixtures import run_cli
from launcher import check
from launcher.inventory import load_inventory

pytestmark = pytest.mark.cluster

VIPU = """#!/bin/sh
# stand-in V-IPU CLI: --api-host H --api-port P (--server-version | get partition NAME)
dir=$(dirname "$0")/..
while [ $# -gt 0 ]; do
    case "$1" in
        --api-host|--api-port) shift 2 ;;
        --server-version) echo "vipu-server version: 1.18.0"; exit 0 ;;
        get) if [ -f "$dir/partitions/$3" ]; then cat "$dir/partitions/$3"; exit 0; fi
             echo "partition $3 not found" >&2; exit 1 ;;
        *) shift ;;
    esac
done
"""


def _executable(path: pathlib.Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _sdk(root: pathlib.Path) -> pathlib.Path:
    (root / "bin").mkdir(parents=True)
    (root / "python" / "popdist").mkdir(parents=True)
    (root / "python" / "poptorch").mkdir()
    (root / "partitions").mkdir()
    (root / "python" / "poptorch" / "__init__.py").write_text('__version__ = "3.4.0+stand-in"\n')
    (root / "python" / "popdist" / "__init__.py").write_text('__version__ = "3.4.0"\n')
    (root / "python" / "popdist" / "poptorch.py").write_text("")
    _executable(root / "bin" / "poprun", "#!/bin/sh\necho 'poprun version 3.4.0 (stand-in)'\n")
    _executable(root / "bin" / "vipu", VIPU)
    (root / "enable").write_text(f'export PATH={root}/bin:"$PATH"\n'
                                 f'export PYTHONPATH={root}/python${{PYTHONPATH:+:$PYTHONPATH}}\n')
    return root


def _inventory(cluster, tmp_path, name, update):
    data = cluster.inventory_data()
    data.update({
        "launcher": "poprun",
        "hosts": data["hosts"][:1],
        "cluster": {"vipu_server_host": "127.0.0.1", "vipu_server_port": 8090},
        "partitions": {"pod16": {"ipus": 16, "update": update}},
        "jobs": {"pretrain": {"config": "vit_base_pod16", "partition": "pod16", "replicas": 4,
                              "ipus_per_replica": 4, "instances": 1}},
    })
    data["paths"] = dict(data["paths"], sdk_enable=[str(tmp_path / "sdk" / "enable")])
    data.pop("network", None)
    return cluster.write_inventory(tmp_path / name, **{k: v for k, v in data.items()})


def _rows(path):
    rows, ok = check.run_checks(load_inventory(path), min_free_gb=0)
    (row,) = rows.values()
    return row, ok


def test_check_reports_the_sdk_and_the_partition(cluster, tmp_path):
    sdk = _sdk(tmp_path / "sdk")
    (sdk / "partitions" / "pod16").write_text("Partition ID: pod16\nSize: 16\nState: ACTIVE\n")
    inv = _inventory(cluster, tmp_path, "ok.yml", update=False)
    row, _ = _rows(inv)
    assert row["sdk"] == (True, "ok") and row["poptorch"] == (True, "3.4.0+stand-in")
    assert row["popdist"] == (True, "3.4.0") and row["poprun"] == (True, "poprun version 3.4.0 (stand-in)")
    assert row["vipu"][0] and "vipu-server version" in row["vipu"][1]
    assert row["partitions"] == (True, "pod16 16 IPUs")
    p = run_cli(["check", "-i", inv, "--min-free-gb", "0"], timeout=180)  # the table has the columns
    assert all(name in p.stdout for name in check.IPU_CHECKS), p.stdout
    os.remove(sdk / "partitions" / "pod16")
    row, ok = _rows(_inventory(cluster, tmp_path, "absent.yml", update=False))
    assert not ok and row["partitions"] == (False, "pod16 absent, jobs need 16 and update is false")
    row, _ = _rows(_inventory(cluster, tmp_path, "update.yml", update=True))
    assert row["partitions"][0] and "poprun creates it" in row["partitions"][1]
    (sdk / "enable").write_text("return 1\n")  # an enable script that fails
    row, ok = _rows(inv)
    assert not ok and row["sdk"][0] is False and row["sdk"][1].startswith("failed ")
    assert row["poptorch"][0] is False
