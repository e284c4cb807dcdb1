"""A host's SSH settings as OpenSSH resolves them (ssh -G reads files only: no network here): an alias
defined in a file pulled in by Include, its ProxyJump hop resolved the same way, the config's
known-hosts files and host-key policy, the inventory's own values winning; the same settings on the
OpenSSH command lines; paramiko's parser only where there is no ssh binary."""
import shlex

import pytest

from launcher import sshconf
from launcher.inventory import parse_inventory
from launcher.ssh import hops, rsync_shell


@pytest.fixture
def inv(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "nodes.conf").write_text(
        "Host node-b\n  HostName 10.0.0.12\n  ProxyJump node-a\n  StrictHostKeyChecking accept-new\n")
    config = tmp_path / "config"
    config.write_text(f"Include {tmp_path}/conf.d/*.conf\n"
                      "Host node-a\n  HostName 10.0.0.11\n  Port 2201\n"
                      f"Host node-*\n  User trainer\n  UserKnownHostsFile {tmp_path}/kh1 {tmp_path}/kh2\n"
                      "  ConnectTimeout 7\n")
    text = (f"name: t\nlauncher: torchrun\nssh: {{ssh_config: {config}}}\n"
            "hosts: [node-a, {name: node-b, port: 2222}]\njobs: {pretrain: {config: digits_pretrain}}\n")
    return parse_inventory(text)


def test_aliases_resolve_as_openssh_resolves_them(inv, tmp_path):
    a, b = (sshconf.resolve(h) for h in inv.hosts)
    assert (a.address, a.port, a.user, a.connect_timeout) == ("10.0.0.11", 2201, "trainer", 7.0)
    assert a.known_hosts_files == f"{tmp_path}/kh1 {tmp_path}/kh2" and a.host_key_policy == "strict"
    # Include, the inventory's port over the default, the config's policy and ProxyJump
    assert (b.address, b.port, b.proxy_jump, b.host_key_policy) == ("10.0.0.12", 2222, "node-a", "accept-new")
    (hop,) = hops(b)
    assert (hop.address, hop.port, hop.user) == ("10.0.0.11", 2201, "trainer")
    assert sshconf.settings(inv.hosts[1]).origin["proxyjump"] == "ssh config"
    assert sshconf.settings(inv.hosts[1]).origin["port"] == "OpenSSH default"


def test_the_openssh_command_line_carries_the_same_settings(inv, tmp_path):
    words = shlex.split(rsync_shell(inv.hosts[1])[1])
    assert words[:3] == ["ssh", "-F", str(tmp_path / "config")]
    assert f"UserKnownHostsFile={tmp_path}/kh1 {tmp_path}/kh2" in words and "StrictHostKeyChecking=accept-new" in words
    proxy = words[words.index("-o", words.index("-p")) + 1]
    assert proxy.startswith("ProxyCommand=ssh -F") and "-p 2201" in proxy and proxy.endswith("-W %h:%p 10.0.0.11")


def test_paramiko_parser_is_the_fallback_without_ssh(inv, tmp_path):
    sshconf._settings.cache_clear()
    s = sshconf._settings("node-a", str(tmp_path / "config"), False)
    assert s.source == "paramiko (no ssh binary)" and s.one("hostname") == "10.0.0.11" and s.one("port") == "2201"
