"""Inventory validation reports every problem at once, each as `file:line: key: sentence`."""
import subprocess
import sys
from pathlib import Path

import pytest

from launcher import addresses
from launcher.errors import InventoryError
from launcher.inventory import load_inventory, parse_inventory

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"digits_pretrain": {"job": "pretrain"}}

BASE = """\
name: t
launcher: torchrun
ssh:
  user: root
  connect_timeout: 5
hosts:
  - name: a
    address: 10.0.0.1
  - name: b
    address: 10.0.0.2
jobs:
  pretrain:
    config: digits_pretrain
"""


def problems(text, tmp_path, name="inv.yml"):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InventoryError) as err:
        load_inventory(path, config_names=CONFIGS)
    return path, err.value.problems


def test_every_problem_is_reported_in_file_order_with_its_line(tmp_path):
    text = BASE.replace("  connect_timeout: 5", "  conect_timeout: 5\n  port: 99999").replace(
        "    address: 10.0.0.2", "    address: 10.0.0.2\n    slot: 1").replace("config: digits_pretrain", "config: nope")
    path, found = problems(text, tmp_path)
    assert found[0] == (f"{path}:5: ssh.conect_timeout: unknown key; did you mean 'connect_timeout'? "
                        "(allowed keys here are connect_timeout, control_persist, host_key_policy, host_timeout, identity_file, known_hosts, "
                        "port, proxy_jump, ssh_config, user)")
    assert found[1].startswith(f"{path}:6: ssh.port: ") and "65535" in found[1]
    assert found[2].startswith(f"{path}:12: hosts[1].slot: unknown key; did you mean 'slots'?")
    assert len(found) == 3  # the unknown config is a cross-check: it needs a valid schema first


def test_cross_checks_report_every_host_entry(tmp_path):
    text = BASE.replace("address: 10.0.0.2", "address: 10.0.0.1").replace(
        "  - name: a", "  - name: 'x[3-1]'\n  - name: a").replace("config: digits_pretrain", "config: nope")
    path, found = problems(text, tmp_path)
    assert [p.split(": ")[0] for p in found] == [f"{path}:7", f"{path}:11"]
    assert "counts backwards" in found[0] and "same machine" in found[1]
    path, found = problems(BASE.replace("config: digits_pretrain", "config: nope\n    consumes: x\n    instances: 2"), tmp_path)
    assert [p.split(": ")[0] for p in found] == [f"{path}:13"]  # one per job: its first cross-check problem


def test_the_command_line_prints_one_error_line_per_problem(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(BASE.replace("  user: root", "  usr: root\n  port: 0"))
    p = subprocess.run([sys.executable, "-m", "launcher", "render", "pretrain", "-i", str(path)],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0] == (f"error: {path}:4: ssh.usr: unknown key; did you mean 'user'? (allowed keys here are "
                        "connect_timeout, control_persist, host_key_policy, host_timeout, identity_file, known_hosts, port, proxy_jump, ssh_config, user)")
    assert lines[1].startswith(f"error: {path}:5: ssh.port: ") and "greater than or equal to 1" in lines[1]


def test_a_tab_is_named_as_a_tab(tmp_path):
    path, found = problems(BASE.replace("  user: root", "\tuser: root"), tmp_path)
    assert len(found) == 1 and found[0].startswith(f"{path}:4: YAML syntax error: a tab character"), found
    assert "replace the tab with spaces" in found[0]


def test_duplicate_keys_are_refused_naming_both_lines(tmp_path):
    text = BASE + "env:\n  A: 1\nenv:\n  B: 2\n"
    path, found = problems(text.replace("  user: root", "  user: root\n  user: mae"), tmp_path)
    assert found == [f"{path}:5: ssh.user: written twice (lines 4 and 5); keep one (YAML would silently use the second)",
                     f"{path}:17: env: written twice (lines 15 and 17); keep one (YAML would silently use the second)"]


@pytest.mark.parametrize("value, words", [
    ("a,,b", "an empty hop"),
    ("u@:22", "is not a host name"),
    ("@jump", "is not a ProxyJump value"),
    ("jump:0", "port must be a number from 1 to 65535"),
    ("jump:ssh", "port must be a number from 1 to 65535"),
    ("[::1", "written [address] or [address]:port"),
    ("[zz::1]:22", "is not an IPv6 address"),
])
def test_malformed_proxy_jump_is_refused_at_validation(tmp_path, value, words):
    path, found = problems(BASE.replace("  user: root", f"  user: root\n  proxy_jump: '{value}'"), tmp_path)
    assert len(found) == 1 and found[0].startswith(f"{path}:5: ssh.proxy_jump: ") and words in found[0], found


def test_proxy_jump_hops_and_ipv6_brackets():
    assert addresses.parse_jumps("a,u@b:2222,[fe80::1]:22,u@[::1],::2") == [
        (None, "a", None), ("u", "b", 2222), (None, "fe80::1", 22), ("u", "::1", None), (None, "::2", None)]
    assert addresses.host_port("::1", 22) == "[::1]:22" and addresses.host_port("h", 22) == "h:22"
    assert addresses.remote_spec("root", "fe80::1%eth0", "w/") == "root@[fe80::1%eth0]:w/"
    assert addresses.remote_spec(None, "10.0.0.1", "/w/") == "10.0.0.1:/w/"


def test_missing_identity_file_is_refused_for_commands_that_connect(tmp_path):
    key = tmp_path / "id_test"
    text = BASE.replace("  user: root", f"  user: root\n  identity_file: {tmp_path / 'absent'}")
    text = text.replace("    address: 10.0.0.2", f"    address: 10.0.0.2\n    identity_file: {key}")
    inv = parse_inventory(text, tmp_path / "inv.yml", config_names=CONFIGS)  # render needs no key
    with pytest.raises(InventoryError) as err:
        inv.require_local_files()
    assert err.value.problems == [
        f"{tmp_path / 'inv.yml'}:5: ssh.identity_file: '{tmp_path / 'absent'}' does not exist on this machine; "
        "give the path of the private key ssh should use",
        f"{tmp_path / 'inv.yml'}:12: hosts[1].identity_file: '{key}' does not exist on this machine; "
        "give the path of the private key ssh should use"]
    key.write_text("k")
    (tmp_path / "absent").write_text("k")
    parse_inventory(text, tmp_path / "inv.yml", config_names=CONFIGS).require_local_files()
