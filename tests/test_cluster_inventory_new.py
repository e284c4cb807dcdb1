"""`mae-launch inventory new` writes inventories that pass `mae-launch check` on the loopback cluster:
from the Host entries of an OpenSSH config file (each host by name; `ssh -G` resolves it), and
from a DeepSpeed/MPI hostfile (slots become nproc_per_node). The `--slurm` source: on captured
output in tests/test_inventory_new.py, on the real Slurm test cluster in tests/test_slurm_inventory_new.py."""
import pytest
import yaml

from cluster_fixtures import run_cli

pytestmark = pytest.mark.cluster


def _ssh_config(cluster, path, with_keys=True):
    """An OpenSSH config naming the loopback hosts loop-hostN (and a pattern block, which is no host)."""
    lines = []
    for h in cluster.hosts:
        lines += [f"Host loop-{h.name}", f"  HostName {h.address}", f"  Port {h.port}"]
    lines += ["Host other.example", "  User nobody", "Host loop-*", "  User root"]
    if with_keys:
        lines += [f"  IdentityFile {cluster.client_key}", f"  UserKnownHostsFile {cluster.known_hosts}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _new(tmp_path, cluster, *args):
    out = tmp_path / "new.yml"
    p = run_cli(["inventory", "new", "loop", "-o", out, "--venv", cluster.venv, "--workdir", tmp_path / "work",
                 "--master-port", cluster.inventory_data()["network"]["master_port"], *args], timeout=60, check=0)
    assert p.stdout.splitlines()[-1] == f"next: mae-launch check -i {out}", p.stdout
    return out


def _check_passes(path):
    p = run_cli(["check", "-i", path], timeout=120)
    assert p.returncode == 0 and "all checks passed" in p.stdout, p.stdout + p.stderr


def test_from_ssh_config_passes_check(cluster, tmp_path):
    config = _ssh_config(cluster, tmp_path / "ssh_config")
    out = _new(tmp_path, cluster, "--from-ssh-config", "loop-*,!loop-host2", "--ssh-config", config)
    data = yaml.safe_load(out.read_text())
    hosts = {h["name"]: h for h in data["hosts"]}
    assert list(hosts) == ["loop-host0", "loop-host1"]
    assert list(hosts["loop-host0"]) == ["name"] and data["ssh"] == {"ssh_config": str(config)}
    _check_passes(out)  # address, port, key and known hosts: OpenSSH's view of each name in that file


def test_hostfile_passes_check(cluster, tmp_path):
    config = _ssh_config(cluster, tmp_path / "ssh_config", with_keys=False)
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("# DeepSpeed hostfile\n" + "".join(f"loop-{h.name} slots=1\n" for h in cluster.hosts) + "\n")
    out = _new(tmp_path, cluster, "--hostfile", hostfile, "--ssh-config", config, "--user", "root",
               "--identity-file", cluster.client_key, "--known-hosts", cluster.known_hosts)
    data = yaml.safe_load(out.read_text())
    assert [h["name"] for h in data["hosts"]] == [f"loop-{h.name}" for h in cluster.hosts]
    assert {h["slots"] for h in data["hosts"]} == {1}
    assert data["jobs"]["pretrain"]["nproc_per_node"] == 1
    assert data["ssh"] == {"user": "root", "identity_file": str(cluster.client_key),
                           "known_hosts": str(cluster.known_hosts), "ssh_config": str(config)}
    _check_passes(out)
