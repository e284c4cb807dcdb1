"""deploy / check / host keys / ProxyJump against real sshd daemons on 127.0.0.x."""
import importlib.metadata
import pathlib
import subprocess

import pytest

from cluster_fixtures import run_cli, tiny_jobs

pytestmark = pytest.mark.cluster


def test_deploy_three_hosts_then_unchanged_redeploy(cluster, deployed, project_source):
    p = deployed["proc"]
    assert p.returncode == 0, p.stdout + p.stderr
    for h in cluster.hosts:
        work = h.workdir
        assert (work / "launcher" / "remote.py").is_file()
        assert (work / "remap" / "remap_ops.so").is_file()  # built (make -C remap) on the host
        assert (work / ".mae-launch-deploy").read_text().strip()
        assert (work / ".mae-launch-workdir").is_file()  # claimed as the sync started (--rsync-path)
        # never synced: outputs, secrets, the virtualenv, git metadata
        for name in (".venv", ".git", "runs", "output", "data"):
            assert not (work / name).exists(), name
    assert p.stdout.count("deployed") >= 3
    again = run_cli(["deploy", "-i", deployed["inventory"], "--source", project_source], check=0)
    assert again.stdout.count("unchanged") >= 3, again.stdout


def _accepted(host) -> int:
    return host.log.read_text(errors="replace").count("Accepted publickey")


def test_a_redeploy_reuses_the_kept_connection_unless_control_persist_is_0(cluster, deployed, project_source,
                                                                          tmp_path):
    host, data = cluster.hosts[0], cluster.inventory_data()["hosts"][0]
    for persist in (0, 60):
        inv = cluster.write_inventory(tmp_path / f"persist{persist}.yml", jobs=tiny_jobs(),
                                      hosts=[dict(data, control_persist=persist)])
        first = _accepted(host)
        run_cli(["deploy", "-i", inv, "--source", project_source, "--force"], check=0)
        second = _accepted(host)
        again = run_cli(["deploy", "-i", inv, "--source", project_source], check=0)
        assert "unchanged" in again.stdout, again.stdout
        if persist == 0:  # one connection per deploy (probe, sync and build share it), closed at the end
            assert (second - first, _accepted(host) - second) == (1, 1)
        else:             # the redeploy rides on the connection the first deploy left
            assert second - first <= 1 and _accepted(host) == second


def test_deploy_is_incremental_and_excludes_secrets(cluster, deployed, project_source, tmp_path):
    src = tmp_path / "src"
    subprocess.run(["rsync", "-a", f"{project_source}/", f"{src}/"], check=True)
    (src / "NEWFILE.txt").write_text("new\n")
    (src / ".env").write_text("TOKEN=hunter2\n")
    (src / "id_ed25519").write_text("private\n")
    (src / "server.pem").write_text("private\n")
    one = cluster.write_inventory(tmp_path / "one.yml", jobs=tiny_jobs(),
                                  hosts=[cluster.inventory_data()["hosts"][0]])
    p = run_cli(["deploy", "-i", one, "--source", src, "--no-build"], check=0)
    work = cluster.hosts[0].workdir
    assert (work / "NEWFILE.txt").read_text() == "new\n"
    for secret in (".env", "id_ed25519", "server.pem"):
        assert not (work / secret).exists(), secret
    assert "deployed" in p.stdout
    # restore the common state for the other tests
    run_cli(["deploy", "-i", one, "--source", project_source, "--force"], check=0)
    assert not (work / "NEWFILE.txt").exists()


def test_deploy_fails_naming_the_host_whose_sshd_is_down(cluster, deployed, project_source):
    down = cluster.hosts[2]
    down.stop()
    try:
        p = run_cli(["deploy", "-i", deployed["inventory"], "--source", project_source, "--force"],
                    timeout=180)
    finally:
        down.start()
        down.wait_ready()
    assert p.returncode != 0
    out = p.stdout + p.stderr
    assert "deploy failed on 1 of 3 host(s): host2" in out
    assert "unreachable" in out and "cannot connect" in out


def test_changed_host_key_is_refused_strict_and_accept_new(cluster, deployed, tmp_path):
    host = cluster.hosts[1]
    host.rotate_host_key()  # known_hosts now holds the old key
    try:
        for policy in ("strict", "accept-new"):
            ssh = dict(cluster.inventory_data()["ssh"], host_key_policy=policy)
            inv = cluster.write_inventory(tmp_path / f"{policy}.yml", jobs=tiny_jobs(), ssh=ssh)
            p = run_cli(["check", "-i", inv], timeout=120)
            assert p.returncode == 1
            assert "CHANGED" in p.stdout, p.stdout
            assert cluster.known_hosts.read_text().count(f"[{host.address}]:{host.port}") == 1
        # rsync over OpenSSH follows the same policy
        from launcher import remote
        from launcher.inventory import load_inventory
        from launcher.paths import HostPath
        h = load_inventory(tmp_path / "accept-new.yml").host("host1")
        t = remote.target(h)
        with pytest.raises(remote.RemoteError) as e:
            t.rsync_up(f"{tmp_path}/", HostPath(str(host.workdir) + "/"), args=["--dry-run"])
        assert e.value.kind == "host-key" and "host key" in e.value.tail.lower()
    finally:
        host.stop()
        (host.dir / "ssh_host_ed25519_key").unlink()
        pathlib.Path(str(host.host_key) + ".pub").unlink()
        host.prepare(cluster.authorized_keys)
        cluster.write_known_hosts()
        host.start()
        host.wait_ready()


def test_accept_new_records_unknown_hosts_strict_refuses_them(cluster, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    ssh = dict(cluster.inventory_data()["ssh"], known_hosts=str(known), host_key_policy="strict")
    strict = cluster.write_inventory(tmp_path / "strict.yml", jobs=tiny_jobs(), ssh=ssh)
    p = run_cli(["check", "-i", strict], timeout=120)
    assert p.returncode == 1 and "not in" in p.stdout
    assert known.read_text() == ""
    accept = cluster.write_inventory(tmp_path / "accept.yml", jobs=tiny_jobs(),
                                     ssh=dict(ssh, host_key_policy="accept-new"))
    run_cli(["check", "-i", accept, "--min-free-gb", "0"], timeout=120)
    lines = known.read_text().splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(f"[{h.address}]:{h.port}" for h in cluster.hosts)
    # the recorded keys are the hosts' real keys: strict now accepts them
    p = run_cli(["check", "-i", strict, "--min-free-gb", "0"], timeout=120)
    assert "key verified" in p.stdout and "CHANGED" not in p.stdout


def test_check_table_and_proxy_jump(cluster, deployed, project_source, tmp_path):
    jump = cluster.hosts[0]
    data = cluster.inventory_data()
    hosts = [dict(h) for h in data["hosts"]]
    hosts[1]["proxy_jump"] = f"root@{jump.address}:{jump.port}"
    inv = cluster.write_inventory(tmp_path / "jump.yml", jobs=tiny_jobs(), hosts=hosts)
    p = run_cli(["check", "-i", inv, "--min-free-gb", "0"], timeout=180)
    out = p.stdout
    for name in ("host0", "host1", "host2"):
        assert name in out
    assert out.count("key verified") == 3
    torch_version = importlib.metadata.version("torch")  # the hosts' venv is this one (cluster.venv)
    assert out.count(f"✓ {torch_version}") == 3, out  # every host's torch column: its version, hosts agree
    assert "data" in out and "not found" in out  # data/digits is not on the hosts: that check fails
    assert p.returncode == 1
    # rsync through the jump host, same policy (ProxyCommand with our known_hosts)
    d = run_cli(["deploy", "-i", inv, "--no-build", "--force", "--source", project_source], timeout=180)
    assert d.returncode == 0, d.stdout + d.stderr


def test_cluster_up_and_down_commands(tmp_path):
    """What `make cluster-up N=2` / `make cluster-down` run: daemons answer, then are gone (by pid)."""
    import json
    import socket
    import sys

    from cluster import ROOT, _alive
    script = [sys.executable, str(ROOT / "tests" / "cluster.py")]
    up = subprocess.run(script + ["up", "-n", "2", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "cluster.json").read_text())
    try:
        assert len(state["hosts"]) == 2 and (tmp_path / "inventory.yml").is_file()
        for h in state["hosts"]:
            with socket.create_connection((h["address"], h["port"]), timeout=5) as s:
                assert s.recv(4) == b"SSH-"
    finally:
        down = subprocess.run(script + ["down", "--dir", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0 and down.stdout.count("stopped sshd") == 2
    from cluster_fixtures import wait_for
    assert wait_for(lambda: not any(_alive(h["pid"]) for h in state["hosts"]), 10)
