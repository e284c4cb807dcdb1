"""The remote layer without a network: local targets, fan-out, host-key policy objects, deploy's file set."""
import threading
import time

import paramiko
import pytest

from launcher import deploy, knownhosts, remote, report, ssh
from launcher.inventory import Host, HostPath
from launcher.knownhosts import AcceptNewPolicy, apply_policy


def local_host(name="here", workdir="/tmp"):
    return Host(name=name, address="localhost", port=None, user=None, identity_file=None, proxy_jump=None,
                known_hosts=None, host_key_policy="strict", connect_timeout=None, connection="local",
                workdir=HostPath(workdir), slots=None)


def test_local_target_runs_rendered_templates_with_hostile_paths(tmp_path):
    hostile = tmp_path / "a b'; touch pwned; echo \"$(id)\""
    t = remote.target(local_host(workdir=str(hostile)))
    assert isinstance(t, remote.LocalTarget)
    from launcher import workdirs
    kv = workdirs.probe(t)  # read-only: creates nothing
    assert kv["exists"] == "0" and kv["real"] == str(hostile) and not hostile.exists()
    workdirs.claim(t)
    assert (hostile / workdirs.OWNER_MARKER).is_file() and hostile.stat().st_mode & 0o077 == 0
    kv = workdirs.probe(t)
    assert (kv["exists"], kv["other"], kv["owned"], kv["hash"], kv["live"]) == ("1", "", "1", "", "")
    assert not (tmp_path / "pwned").exists()


def test_local_target_failure_and_timeout():
    t = remote.target(local_host())
    with pytest.raises(remote.RemoteError) as e:
        t.run("echo out; echo err >&2; exit 3", check=True)
    assert e.value.kind == "failed" and "err" in e.value.tail
    with pytest.raises(remote.RemoteError) as e:
        t.run("sleep 5", timeout=0.3)
    assert e.value.kind == "timeout"


def test_fan_out_caps_concurrency_keeps_order_and_reports_each_host():
    ts = [remote.target(local_host(f"h{i}")) for i in range(6)]
    running, peak, lock = [0], [0], threading.Lock()

    def work(t):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        if t.name == "h3":
            raise remote.RemoteError(t.name, "unreachable", "cannot connect", "last line")
        if t.name == "h4":
            raise ValueError("boom")
        return t.name.upper()

    results = remote.fan_out(ts, work, limit=2)
    assert peak[0] <= 2
    assert [r.host for r in results] == [f"h{i}" for i in range(6)]
    assert [r.ok for r in results] == [True, True, True, False, False, True]
    assert results[0].value == "H0" and results[3].kind == "unreachable" and "boom" in results[4].error
    assert report.exit_status(results) == 1 and report.exit_status(results[:3]) == 0
    msg = report.failure_message("deploy", results)
    assert msg.startswith("deploy failed on 2 of 6 host(s): h3, h4") and "last line" in msg


def test_fan_out_phase_timeout():
    ts = [remote.target(local_host(f"h{i}")) for i in range(2)]
    results = remote.fan_out(ts, lambda t: time.sleep(2 if t.name == "h1" else 0) or "ok", timeout=0.5)
    assert results[0].ok and not results[1].ok and results[1].kind == "timeout"


def test_accept_new_policy_records_unknown_and_refuses_other_key_types(tmp_path):
    known = tmp_path / "known_hosts"
    client = paramiko.SSHClient()
    apply_policy(client, "accept-new", known)
    policy = client._policy
    assert isinstance(policy, AcceptNewPolicy)
    ed = paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path, "ed25519")))
    policy.missing_host_key(client, "[10.0.0.1]:2222", ed)
    assert known.read_text().split()[:2] == ["[10.0.0.1]:2222", "ssh-ed25519"]
    rsa = paramiko.RSAKey.generate(1024)
    with pytest.raises(paramiko.BadHostKeyException):  # known under another type = changed
        policy.missing_host_key(client, "[10.0.0.1]:2222", rsa)
    strict = paramiko.SSHClient()
    apply_policy(strict, "strict", known)
    assert isinstance(strict._policy, paramiko.RejectPolicy)
    assert strict.get_host_keys().lookup("[10.0.0.1]:2222")["ssh-ed25519"] == ed


def _keygen(tmp_path, kind):
    import subprocess
    path = tmp_path / f"key_{kind}"
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return path


def test_deploy_file_set_honours_gitignore_and_deny_list(tmp_path):
    root = tmp_path / "proj"
    for rel in ["launcher/a.py", "keep.txt", ".env", "id_rsa", "x.pem", "runs/r/log", "output/o",
                ".venv/bin/python", "ignored.tmp", "sub/ignored.tmp", "remap/remap_ops.so", ".git/HEAD",
                "data/digits/x.png"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    (root / ".gitignore").write_text("*.tmp\n")
    files = [f for f in deploy.file_list(root) if not (root / f).is_dir()]
    assert sorted(files) == [".gitignore", "keep.txt", "launcher/a.py"]
    secrets = [".netrc", ".git-credentials", ".pypirc", ".aws/credentials", ".ssh/config", ".envrc", "wandb/run/x",
               "c.p12", "c.pfx", "k.ppk", "credentials.json", "sub/credentials.json", "id_ed25519", "id_ed25519.pub",
               "id_ecdsa", "id_dsa", "id_rsa-cert.pub", "inventories/site.yml", "site/inventory.yml"]
    for rel in secrets + ["mae/id_utils.py", "id_card.txt", "sub/inventories/x.yml"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    inv = type("Inv", (), {"source_path": root / "site" / "inventory.yml"})()  # an inventory inside the tree
    files = [f for f in deploy.file_list(root, deploy.inventory_excludes(inv, root)) if not (root / f).is_dir()]
    assert sorted(files) == [".gitignore", "id_card.txt", "keep.txt", "launcher/a.py", "mae/id_utils.py",
                             "sub/inventories/x.yml"]
    for rel in secrets:
        (root / rel).unlink()
    h1 = deploy.content_hash(root)
    assert deploy.content_hash(root) == h1
    (root / "ignored.tmp").write_text("changed")  # ignored files do not change the hash
    assert deploy.content_hash(root) == h1
    (root / "keep.txt").write_text("changed")
    assert deploy.content_hash(root) != h1


def test_fan_out_timeout_is_per_host_not_per_batch():
    ts = [remote.target(local_host(f"h{i}")) for i in range(3)]
    results = remote.fan_out(ts, lambda t: time.sleep(0.4) or "ok", limit=1, timeout=1.0)
    assert [r.ok for r in results] == [True, True, True]  # 1.2 s in all, 0.4 s each


def test_fan_out_raises_bad_local_setup_instead_of_charging_a_host():
    from launcher.errors import UserError
    ts = [remote.target(local_host("h0"))]
    with pytest.raises(UserError, match=r"rsync-not-here is not installed on this machine; install it "
                                        r"\(Debian/Ubuntu: apt-get install rsync\)"):
        remote.fan_out(ts, lambda t: remote.run_local(["rsync-not-here", "--version"], package="rsync"))


def test_accept_new_appends_a_line_of_its_own_and_reads_system_known_hosts(tmp_path, monkeypatch):
    known = tmp_path / "known_hosts"
    known.write_text("[10.0.0.9]:22 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx")  # no final newline
    client = paramiko.SSHClient()
    apply_policy(client, "accept-new", known)
    ed = paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path, "ed25519")))
    client._policy.missing_host_key(client, "[10.0.0.1]:2222", ed)
    lines = known.read_text().splitlines()
    assert len(lines) == 2 and lines[1].split()[:2] == ["[10.0.0.1]:2222", "ssh-ed25519"]
    system = tmp_path / "ssh_known_hosts"
    system.write_text(f"[10.0.0.5]:22 ssh-ed25519 {ed.get_base64()}\n")
    monkeypatch.setattr(knownhosts, "SYSTEM_KNOWN_HOSTS", (str(system),))
    strict = paramiko.SSHClient()
    apply_policy(strict, "strict", tmp_path / "absent")
    assert strict._system_host_keys.lookup("[10.0.0.5]:22")["ssh-ed25519"] == ed


def test_marker_lines_never_break_the_other_lines(tmp_path):
    ed = paramiko.Ed25519Key.from_private_key_file(str(_keygen(tmp_path, "ed25519")))
    rsa = paramiko.RSAKey.generate(1024)
    known = tmp_path / "known_hosts"
    known.write_text(f"@cert-authority *.example.com ssh-ed25519 {ed.get_base64()}\n"
                     f"@revoked * ssh-rsa {rsa.get_base64()}\n"
                     "garbage line\n"
                     f"[10.0.0.1]:22 ssh-ed25519 {ed.get_base64()}\n")
    client = paramiko.SSHClient()
    apply_policy(client, "accept-new", known)
    assert client.get_host_keys().lookup("[10.0.0.1]:22")["ssh-ed25519"] == ed
    with pytest.raises(knownhosts.KnownHostsError, match=r"marked @revoked \(.*known_hosts:2\)"):
        client._policy.missing_host_key(client, "[10.0.0.2]:22", rsa)
    with pytest.raises(knownhosts.KnownHostsError, match=r"known only through a host certificate authority "
                                                        r"\(.*known_hosts:1\), which mae-launch cannot verify"):
        client._policy.missing_host_key(client, "node1.example.com", ed)
    assert "node1" not in known.read_text()


def test_rsync_shell_multi_hop_ipv6_and_timeouts():
    import shlex
    h = Host(name="n", address="fe80::5", port=None, user="me", identity_file=None, proxy_jump="a@j1,j2:2200",
             known_hosts="/k/kh", host_key_policy="strict", connect_timeout=5, connection="ssh",
             workdir=HostPath("~"), slots=None)
    opts, dest = ssh.rsync_shell(h), remote.target(h).remote_path(HostPath("~/"))
    assert dest == "me@[fe80::5]:./" and "--timeout=15" in opts
    words = shlex.split(opts[1])
    for o in ("ConnectTimeout=5", "ServerAliveInterval=2", "ServerAliveCountMax=3"):
        assert o in words
    outer = shlex.split(next(w for w in words if w.startswith("ProxyCommand=")).split("=", 1)[1])
    assert outer[-3:] == ["-W", "%h:%p", "j2"] and outer[outer.index("-p") + 1] == "2200"
    inner = shlex.split(next(w for w in outer if w.startswith("ProxyCommand=")).split("=", 1)[1])
    assert inner[-5:] == ["-l", "a", "-W", "j2:2200", "j1"] and "ServerAliveCountMax=3" in inner


def test_rsync_shell_renders_policy_into_ssh_options():
    h = Host(name="n", address="10.1.2.3", port=2222, user="me", identity_file="/k/id key", proxy_jump="j@bast:22",
             known_hosts="/k/known hosts", host_key_policy="accept-new", connect_timeout=7, connection="ssh",
             workdir=HostPath("~/w"), slots=None)
    opts, dest = ssh.rsync_shell(h), remote.target(h).remote_path(HostPath("~/w/"))
    assert opts[0] == "-e" and dest == "me@10.1.2.3:w/"
    import shlex
    words = shlex.split(opts[1])
    assert words[:3] == ["ssh", "-o", "BatchMode=yes"]
    assert "StrictHostKeyChecking=accept-new" in words and "UserKnownHostsFile=/k/known hosts" in words
    assert "StrictHostKeyChecking=no" not in opts[1]
    proxy = next(w for w in words if w.startswith("ProxyCommand="))
    inner = shlex.split(proxy.split("=", 1)[1])
    assert inner[-3:] == ["-W", "%h:%p", "bast"] and "UserKnownHostsFile=/k/known hosts" in inner


def test_a_refused_connection_is_said_in_words_not_paramikos(tmp_path):
    import socket
    with socket.socket() as s:  # a port nothing listens on: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        host = Host(name="down", address="127.0.0.1", port=port, user="root", identity_file=None, proxy_jump=None,
                    known_hosts=str(tmp_path / "known_hosts"), host_key_policy="strict", connect_timeout=3,
                    connection="ssh", workdir=HostPath("/tmp"), slots=None)
        t = remote.target(host)
        with pytest.raises(remote.RemoteError) as e:
            t.run("true", timeout=10)
        t.close()
    assert e.value.kind == "unreachable"
    assert e.value.message == (f"cannot connect to 127.0.0.1:{port}: connection refused on port {port} "
                               "(is sshd running there, and on that port?)")
    assert "Errno" not in str(e.value)
