"""The rendezvous on the loopback cluster: the address torchrun's ranks meet at is never an ssh alias,
`check` probes it from every host, and a rendezvous that cannot form stops the run within
network.rendezvous_timeout, naming the hosts that never joined."""
import secrets
import time

import pytest

from cluster_fixtures import runs_dir, run_cli, run_processes, tiny_jobs  # noqa: F401 (fixture)

pytestmark = [pytest.mark.cluster]

_TOKEN = secrets.token_hex(3)


def _hosts(cluster, n):
    return cluster.inventory_data()["hosts"][:n]


def test_a_rendezvous_that_cannot_form_is_stopped_naming_the_hosts(cluster, deployed, runs_dir, tmp_path):
    run_id = f"nordzv-{_TOKEN}"
    data = cluster.inventory_data()
    net = dict(data["network"], master_addr="rendezvous.invalid", rendezvous_timeout=8)
    inv = cluster.write_inventory(tmp_path / "inv.yml", jobs=tiny_jobs(), hosts=_hosts(cluster, 2), network=net)
    t0 = time.monotonic()
    p = run_cli(["pretrain", "-i", inv, "--run-id", run_id, "--poll", "0.3"], env_extra=runs_dir, timeout=60, check=None)
    took = time.monotonic() - t0
    out = p.stdout + p.stderr
    print(out, f"\nended after {took:.1f} s")
    assert p.returncode == 1, out
    assert took < 8 + 20, took  # the timeout, the start and the teardown
    assert "earliest failure: host host0, host1: the rendezvous did not form within 8 s" in out
    assert "never joined" in out and "host1: " in out.split("never joined")[1]  # and what its log last said
    assert not run_processes(run_id)


def test_check_probes_the_rendezvous_from_every_host(cluster, tmp_path):
    data = cluster.inventory_data()
    good = cluster.write_inventory(tmp_path / "good.yml", jobs=tiny_jobs(), hosts=_hosts(cluster, 2))
    p = run_cli(["check", "-i", good, "--json", "--min-free-gb", "0"], timeout=120, check=None)
    import json
    hosts = json.loads(p.stdout)["hosts"]
    assert [hosts[h]["rendezvous"]["ok"] for h in ("host0", "host1")] == [True, True], p.stdout
    assert all("answers" in hosts[h]["rendezvous"]["text"] for h in ("host0", "host1"))
    net = dict(data["network"], master_addr="rendezvous.invalid")
    bad = cluster.write_inventory(tmp_path / "bad.yml", jobs=tiny_jobs(), hosts=_hosts(cluster, 2), network=net)
    p = run_cli(["check", "-i", bad, "--json", "--min-free-gb", "0"], timeout=120, check=None)
    hosts = json.loads(p.stdout)["hosts"]
    assert p.returncode == 1
    for h in ("host0", "host1"):
        assert hosts[h]["rendezvous"]["ok"] is False
        assert "rendezvous.invalid does not resolve on this host" in hosts[h]["rendezvous"]["text"]
