"""SSH details against real sshd daemons: multi-hop jumps, known_hosts markers, a host that never speaks."""
import pathlib
import socket
import subprocess
import threading
import time

import pytest

from cluster_fixtures import run_cli, tiny_jobs

pytestmark = pytest.mark.cluster


def _accepted(host) -> int:
    return host.log.read_text(errors="replace").count("Accepted publickey")


def test_multi_hop_proxy_jump_on_paramiko_and_rsync(cluster, deployed, project_source, tmp_path):
    first, second, target = cluster.hosts
    data = cluster.inventory_data()
    host = dict(data["hosts"][2], proxy_jump=f"root@{first.address}:{first.port},root@{second.address}:{second.port}")
    inv = cluster.write_inventory(tmp_path / "hops.yml", jobs=tiny_jobs(), hosts=[host])
    before = (_accepted(first), _accepted(second), _accepted(target))
    p = run_cli(["check", "-i", inv, "--min-free-gb", "0"], timeout=180)
    assert p.stdout.count("key verified") == 1, p.stdout
    after = (_accepted(first), _accepted(second), _accepted(target))
    assert [a - b for a, b in zip(after, before)] == [1, 1, 1]  # one login on each hop, then the host
    d = run_cli(["deploy", "-i", inv, "--no-build", "--force", "--source", project_source], timeout=180)
    assert d.returncode == 0, d.stdout + d.stderr
    # deploy's one OpenSSH connection (nested ProxyCommands) went through both hops
    again = (_accepted(first), _accepted(second), _accepted(target))
    assert [a - b for a, b in zip(again, after)] == [1, 1, 1]


def test_marker_lines_in_known_hosts_are_honoured_per_host(cluster, deployed, tmp_path):
    revoked = cluster.hosts[2]
    known = tmp_path / "known_hosts"
    key = pathlib.Path(str(revoked.host_key) + ".pub").read_text().split()
    known.write_text(f"@cert-authority *.example.com {key[0]} {key[1]}\n"
                     + cluster.known_hosts.read_text()
                     + f"@revoked * {key[0]} {key[1]}\n")
    ssh = dict(cluster.inventory_data()["ssh"], known_hosts=str(known))
    inv = cluster.write_inventory(tmp_path / "markers.yml", jobs=tiny_jobs(), ssh=ssh)
    p = run_cli(["check", "-i", inv, "--min-free-gb", "0"], timeout=180, env_extra={"COLUMNS": "1000"})
    assert p.returncode == 1
    out = " ".join(p.stdout.split())
    assert out.count("key verified") == 2  # the other hosts are unaffected by the marker lines
    assert f"host-key: the host key of {revoked.address} is marked @revoked" in out, p.stdout
    assert "hosts:5); refusing to connect" in out, p.stdout  # the line of known_hosts that says so (table-wrapped)
    # OpenSSH (the rsync path) refuses it too
    from launcher import remote, ssh
    from launcher.inventory import load_inventory
    from launcher.paths import HostPath
    h = load_inventory(inv).host("host2")
    opts, dest = ssh.rsync_shell(h), remote.target(h).remote_path(HostPath(str(revoked.workdir) + "/"))
    r = subprocess.run(["rsync", "-a", "--dry-run", *opts, f"{tmp_path}/", dest], capture_output=True, text=True)
    assert r.returncode != 0 and "REVOKED" in r.stderr.upper()


class SilentHost:
    """A TCP listener that accepts connections and never says a word (a hung sshd)."""

    def __init__(self, address="127.0.0.60"):
        self.sock = socket.socket()
        self.sock.bind((address, 0))
        self.sock.listen(64)
        self.address, self.port = self.sock.getsockname()
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


@pytest.fixture
def silent_inventory(cluster, tmp_path):
    silent = SilentHost()
    data = cluster.inventory_data()
    hosts = [data["hosts"][0], {"name": "silent", "address": silent.address, "port": silent.port,
                                "workdir": str(tmp_path / "silent"), "slots": 1}]
    ssh = dict(data["ssh"], connect_timeout=3)
    inv = cluster.write_inventory(tmp_path / "silent.yml", jobs=tiny_jobs(), hosts=hosts, ssh=ssh)
    yield inv, silent
    silent.close()


@pytest.mark.parametrize("command", [["check", "--min-free-gb", "0"], ["deploy", "--no-build", "--force"]])
def test_a_host_that_never_speaks_fails_within_the_connect_timeout(silent_inventory, project_source, command):
    inv, silent = silent_inventory
    extra = ["--source", project_source] if command[0] == "deploy" else []
    started = time.monotonic()
    # a terminal wide enough for the whole preflight table: the sentence is read unwrapped
    p = run_cli([command[0], "-i", inv, *command[1:], *extra], timeout=120, env_extra={"COLUMNS": "1000"})
    seconds = time.monotonic() - started
    out = p.stdout + p.stderr
    print(f"{command[0]} against a silent host: rc {p.returncode} in {seconds:.1f} s")
    assert p.returncode == 1
    words = " ".join(out.split())
    assert "silent" in out and "cannot connect" in words  # paramiko (check) names the address, OpenSSH (deploy) the host
    assert command[0] == "deploy" or f"cannot connect to {silent.address}:{silent.port}" in words
    # paramiko kept quiet: no traceback and no log record of its own (the table's sentence may quote the error)
    assert "Traceback" not in out and "Exception (client)" not in out, out
    assert "Error reading SSH protocol banner" not in p.stderr, p.stderr
    assert seconds < 3 + 12, seconds  # connect_timeout + the command's own start-up on a loaded machine


def test_rsync_to_a_host_that_never_speaks_gives_up(silent_inventory, tmp_path):
    inv, silent = silent_inventory
    from launcher import remote, ssh
    from launcher.inventory import load_inventory
    from launcher.paths import HostPath
    h = load_inventory(inv).host("silent")
    opts, dest = ssh.rsync_shell(h), remote.target(h).remote_path(HostPath("~/w/"))
    started = time.monotonic()
    r = subprocess.run(["rsync", "-a", *opts, f"{tmp_path}/", dest], capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - started
    print(f"rsync against a silent host: rc {r.returncode} in {seconds:.1f} s: {r.stderr.strip()[:200]}")
    assert r.returncode != 0 and seconds < 3 + 5


def test_check_tests_rsync_here_and_on_every_host(cluster, deployed):
    import os
    import sys
    env = {"PATH": "/nonexistent-bin", "MAE_LAUNCH_RUNS_DIR": os.environ.get("MAE_LAUNCH_RUNS_DIR", "/tmp")}
    p = subprocess.run([sys.executable, "-m", "launcher", "check", "-i", str(deployed["inventory"]), "--min-free-gb", "0"],
                       capture_output=True, text=True, timeout=180, env={**os.environ, **env, "COLUMNS": "250"})
    out = " ".join(p.stdout.split())
    assert p.returncode == 1
    assert "✗ rsync is missing on this machine; install it (Debian/Ubuntu: apt-get install rsync)" in out, p.stdout
    assert "✗ ssh is missing on this machine; install it (Debian/Ubuntu: apt-get install openssh-client)" in out
    rows = [line for line in p.stdout.splitlines() if line.startswith("│ host")]
    assert len(rows) == 3 and all(row.split("│")[8].strip() == "✓ ok" for row in rows), p.stdout  # the rsync column
