"""Hosts named only by an alias of the user's OpenSSH client configuration, on the loopback cluster:
the configuration (written by the test, passed as ssh -F through `ssh.ssh_config`, so this machine's
own ~/.ssh/config is never read or changed) defines one host directly and one in a file pulled in by
`Include`, reached through `ProxyJump` over the first; host keys are where its `UserKnownHostsFile`
points; the only key is in an ssh-agent. check, deploy, exec and a 2-host pretraining all run, and the
rendezvous address is the HostName, never the alias."""
import json
import os
import re
import secrets
import signal
import subprocess

import pytest

from cluster_fixtures import run_cli, run_processes, tiny_jobs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture
def agent(cluster, tmp_path):
    """A real ssh-agent holding the cluster's client key (stopped by its pid afterwards)."""
    sock = tmp_path / "agent.sock"
    out = subprocess.run(["ssh-agent", "-a", str(sock)], capture_output=True, text=True, timeout=10, check=True)
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", out.stdout).group(1))
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", str(cluster.client_key)], env=env, capture_output=True, timeout=10, check=True)
        yield str(sock)
    finally:
        os.kill(pid, signal.SIGTERM)


def _config(cluster, tmp_path) -> str:
    h0, h1 = cluster.hosts[0], cluster.hosts[1]
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (conf_d / "gpu.conf").write_text(
        f"Host gpu-b\n  HostName {h1.address}\n  Port {h1.port}\n  ProxyJump gpu-a\n")
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Include {conf_d}/*.conf\n"
        f"Host gpu-a\n  HostName {h0.address}\n  Port {h0.port}\n"
        f"Host gpu-*\n  User root\n  UserKnownHostsFile {cluster.known_hosts}\n  StrictHostKeyChecking yes\n")
    return str(config)


def test_hosts_named_only_by_alias_through_include_proxyjump_and_an_agent(cluster, deployed, project_source,
                                                                          agent, runs_dir, tmp_path):
    config = _config(cluster, tmp_path)
    data = cluster.inventory_data()
    hosts = [{"name": "gpu-a", "workdir": str(cluster.hosts[0].workdir), "slots": 1},
             {"name": "gpu-b", "workdir": str(cluster.hosts[1].workdir), "slots": 1}]
    # no user, port, key or known_hosts in the inventory, and no network.interface: all from OpenSSH
    inv = cluster.write_inventory(tmp_path / "alias.yml", jobs=tiny_jobs(), hosts=hosts,
                                  ssh={"ssh_config": config, "connect_timeout": 5},
                                  network={"master_port": data["network"]["master_port"]})
    env = {**runs_dir, "SSH_AUTH_SOCK": agent}
    explained = run_cli(["check", "-i", inv, "--explain", "gpu-b"], env_extra=env, check=0).stdout
    assert re.search(rf"proxyjump\s+│ gpu-a\s+│ ssh config", explained), explained
    assert re.search(rf"→ address\s+│ {re.escape(cluster.hosts[1].address)}\s", explained), explained

    p = run_cli(["check", "-i", inv, "--min-free-gb", "0", "--json"], env_extra=env, timeout=180)
    checked = json.loads(p.stdout)["hosts"]  # JSON: a table cell may wrap its text
    assert [checked[h]["ssh"] for h in ("gpu-a", "gpu-b")] == [{"ok": True, "text": "key verified"}] * 2, p.stdout
    rendezvous = f"{cluster.hosts[0].address}:{data['network']['master_port']} answers"
    assert [checked[h]["rendezvous"] for h in ("gpu-a", "gpu-b")] == [{"ok": True, "text": rendezvous}] * 2, p.stdout

    d = run_cli(["deploy", "-i", inv, "--no-build", "--source", project_source], env_extra=env, timeout=300)
    assert d.returncode == 0, d.stdout + d.stderr
    e = run_cli(["exec", "-i", inv, "--", "hostname"], env_extra=env, timeout=120)
    assert e.returncode == 0 and "gpu-a" in e.stdout and "gpu-b" in e.stdout, e.stdout + e.stderr

    rendered = run_cli(["render", "pretrain", "-i", inv, "--commands"], env_extra=env, check=0).stdout
    assert f"--master_addr={cluster.hosts[0].address} " in rendered and "--master_addr=gpu-a" not in rendered
    run_id = f"alias-{secrets.token_hex(3)}"
    r = run_cli(["pretrain", "-i", inv, "--run-id", run_id], env_extra=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "pretrain finished on every host" in r.stdout
    assert not run_processes(run_id)

    # without the agent nothing authenticates: the agent's key was the one used
    no_agent = {**runs_dir, "SSH_AUTH_SOCK": str(tmp_path / "none.sock")}
    p = run_cli(["check", "-i", inv, "--min-free-gb", "0"], env_extra=no_agent, timeout=180)
    assert p.returncode == 1 and "auth" in p.stdout, p.stdout
