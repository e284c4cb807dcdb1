"""A real run on a subset of the loopback cluster, with --env and appended program arguments; the run
record keeps all of it."""
import json
import pathlib
import secrets

import pytest

from cluster_fixtures import run_cli, tiny_jobs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_pretrain_on_a_subset_with_env_and_args(cluster, deployed, runs_dir, tmp_path):
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs())
    rid = f"subset-{secrets.token_hex(3)}"
    p = run_cli(["pretrain", "-i", inv, "--run-id", rid, "--exclude", "host1", "--env", "MAE_TEST_FLAG=on a b",
                 "--", "--print_freq", "2"], env_extra=runs_dir, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "on 2 host(s)" in p.stdout
    rec_dir = pathlib.Path(runs_dir["MAE_LAUNCH_RUNS_DIR"]) / rid
    run = json.loads((rec_dir / "run.json").read_text())
    assert list(run["jobs"][0]["hosts"]) == ["host0", "host2"]
    assert run["command"][-6:] == ["--exclude", "host1", "--env", "MAE_TEST_FLAG=on a b", "--", "--print_freq", "2"][-6:]
    snap = json.loads((rec_dir / "inventory.json").read_text())
    assert [h["name"] for h in snap["hosts"]] == ["host0", "host2"]
    assert snap["jobs"]["pretrain"]["args"][-2:] == ["--print_freq", "2"]
    script = (rec_dir / "pretrain.host2.sh").read_text()
    assert "export MAE_TEST_FLAG='on a b'" in script and "--print_freq 2" in script
    rank0 = (cluster.hosts[0].workdir / "runs" / rid / "pretrain.rank0.log").read_text()
    assert "2 process(es)" in rank0
    assert not (cluster.hosts[1].workdir / "runs" / rid).exists()
