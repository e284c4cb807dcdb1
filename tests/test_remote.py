"""The remote layer without a network: local targets, fan-out, host-key policy objects, deploy's file set."""
import pathlib
import threading
import time

import paramiko
import pytest

from launcher import deploy, remote, report, ssh
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
    done = t.run_template("deploy_probe.sh.j2", timeout=30, check=True, workdir=HostPath(str(hostile)),
                          facts=False, venv=None)
    assert remote.parse_kv(done.stdout) == {"hash": ""}
    assert hostile.is_dir() and not (tmp_path / "pwned").exists()


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
    h1 = deploy.content_hash(root)
    assert deploy.content_hash(root) == h1
    (root / "ignored.tmp").write_text("changed")  # ignored files do not change the hash
    assert deploy.content_hash(root) == h1
    (root / "keep.txt").write_text("changed")
    assert deploy.content_hash(root) != h1


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
