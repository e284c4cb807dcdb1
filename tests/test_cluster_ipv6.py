"""An IPv6 host on the real sshd cluster: an sshd listening on ::1, reached by address "::1" for
paramiko (exec) and for OpenSSH + rsync (deploy: bracketed, never taken for rsync daemon syntax)."""
import socket

import pytest
import yaml

from cluster import SshHost
from cluster_fixtures import run_cli

pytestmark = pytest.mark.cluster


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def v6_host(cluster, tmp_path):
    if not _ipv6_loopback():
        pytest.skip("machine capability: no IPv6 loopback (::1) here")
    host = SshHost(tmp_path / "v6", 60, address="::1")
    host.prepare(cluster.authorized_keys)
    host.start()
    try:
        host.wait_ready()
        yield host
    finally:
        host.stop()


def test_deploy_and_exec_reach_an_ipv6_host(cluster, v6_host, project_source, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(v6_host.known_hosts_line())
    assert known.read_text().startswith(f"[::1]:{v6_host.port} ")
    data = cluster.inventory_data(hosts=[{"name": "v6", "address": "::1", "port": v6_host.port,
                                          "workdir": str(v6_host.workdir / "mae"), "slots": 1}])
    data["ssh"]["known_hosts"] = str(known)
    inv = tmp_path / "v6.yml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    d = run_cli(["deploy", "-i", inv, "--source", project_source, "--no-build"], timeout=180)
    assert d.returncode == 0, d.stdout + d.stderr
    assert (v6_host.workdir / "mae" / "launcher" / "remote.py").is_file()  # rsync went to [::1]
    e = run_cli(["exec", "-i", inv, "--no-venv", "--", "bash", "-c", "echo in $PWD"], timeout=120)
    assert e.returncode == 0, e.stdout + e.stderr
    assert any(line.endswith(f"| in {v6_host.workdir / 'mae'}") for line in e.stdout.splitlines()), e.stdout
