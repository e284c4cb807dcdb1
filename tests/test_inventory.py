"""Inventory loading: shipped inventories, host ranges, resolution, and one clear error per mistake."""
import json
import re
from pathlib import Path

import pytest

from launcher import hostrange
from launcher.errors import InventoryError, PlanError
from launcher.inventory import load_inventory, parse_inventory

ROOT = Path(__file__).resolve().parents[1]
INVENTORIES = sorted((ROOT / "inventories").glob("*.yml"))
POD64 = (ROOT / "inventories" / "pod64.yml").read_text()
GPU = (ROOT / "inventories" / "gpu-cluster.yml").read_text()


@pytest.mark.parametrize("path", INVENTORIES, ids=lambda p: p.name)
def test_shipped_inventories_load(path):
    inv = load_inventory(path)
    assert inv.controller in inv.hosts and inv.jobs and inv.source_path == path


def test_pod64_resolves_as_the_reference():
    inv = load_inventory(ROOT / "inventories" / "pod64.yml")
    assert [h.name for h in inv.hosts] == [f"pod64-host{i}" for i in range(4)]
    assert inv.controller.name == "pod64-host0" and inv.launcher == "poprun"
    job = inv.jobs["pretrain"]
    assert (job.replicas, job.ipus_per_replica, job.instances, job.partition) == (16, 4, 4, "pod64")
    assert inv.partitions["pod64"].ipus == 64 and inv.cluster.timeout == 3600
    h = inv.hosts[2]
    assert (h.user, h.port, h.host_key_policy, h.connect_timeout, h.connection) == ("mae", None, "strict", 10, "ssh")
    assert inv.jobs["finetune"].consumes == "pretrain" and inv.jobs["validate"].consumes == "finetune"


def test_local_inventory_runs_here_from_the_checkout():
    inv = load_inventory(ROOT / "inventories" / "local.yml")
    (host,) = inv.hosts
    assert host.is_local and host.workdir == str(ROOT)
    assert inv.host_path(host, inv.paths.venv) == str(ROOT / ".venv")
    assert inv.launcher == "torchrun" and inv.jobs["pretrain"].config == "digits_pretrain"


@pytest.mark.parametrize("pattern, names", [
    ("pod64-host[0-3]", ["pod64-host0", "pod64-host1", "pod64-host2", "pod64-host3"]),
    ("node[01-04]", ["node01", "node02", "node03", "node04"]),
    ("n[8-11]", ["n8", "n9", "n10", "n11"]),
    ("gpu[001-002,010]", ["gpu001", "gpu002", "gpu010"]),
    ("r[1-2]-h[0-1]", ["r1-h0", "r1-h1", "r2-h0", "r2-h1"]),
    ("plain.example.com", ["plain.example.com"]),
])
def test_host_ranges_expand(pattern, names):
    assert hostrange.expand(pattern) == names


@pytest.mark.parametrize("pattern", ["h[3-1]", "h[a-b]", "h[0-3", "h[[0-1]]", "h[]", "h[0-99999]"])
def test_bad_host_ranges_are_refused(pattern):
    with pytest.raises(ValueError):
        hostrange.expand(pattern)


def test_hosts_mix_names_mappings_and_per_host_overrides(tmp_path):
    text = GPU.replace("  - name: gpu[01-02]           # gpu01, gpu02\n    slots: 8                   # GPUs per node\n",
                       "  - name: gpu[01-02]\n    slots: 8\n  - name: gpu03\n    address: 10.0.0.3\n    port: 2222\n"
                       "    user: other\n    host_key_policy: accept-new\n    workdir: /scratch/mae\n    slots: 8\n")
    text = text.replace("replicas: 16", "replicas: 24")
    inv = parse_inventory(text, tmp_path / "g.yml")
    g1, g3 = inv.host("gpu01"), inv.host("gpu03")
    assert (g1.address, g1.port, g1.user, g1.host_key_policy, g1.workdir) == ("gpu01", None, "mae", "strict", "~/mae-launch")
    assert (g3.address, g3.port, g3.user, g3.host_key_policy, g3.workdir) == ("10.0.0.3", 2222, "other", "accept-new", "/scratch/mae")
    assert g3.identity_file == "~/.ssh/id_ed25519"  # inherited from ssh:
    assert inv.host_path(g3, "data/x") == "/scratch/mae/data/x" and inv.host_path(g1, "/abs") == "/abs"


def test_secrets_are_masked_in_snapshots_and_reprs():
    inv = load_inventory(ROOT / "inventories" / "gpu-cluster.yml")
    assert inv.env["WANDB_API_KEY"].secret and inv.secret_values() == ["replace-me"]
    snap = inv.snapshot()
    assert snap["env"] == {"NCCL_DEBUG": "WARN", "WANDB_API_KEY": "***"}
    assert "replace-me" not in repr(snap) and "replace-me" not in repr(inv) and "replace-me" not in str(inv.env)
    assert snap["hosts"][0]["name"] == "gpu01" and snap["controller"] == "gpu01"
    assert "replace-me" not in json.dumps(snap)  # plain data, ready for a run record


def test_unknown_job_is_a_plan_error():
    inv = load_inventory(ROOT / "inventories" / "local.yml")
    with pytest.raises(PlanError, match="no job named 'train'"):
        inv.job("train")


CONFIGS = {"vit_base_pod64": {"job": "pretrain", "replica": 16, "ipus_per_replica": 4},
           "vit_base_finetune": {"job": "finetune", "replica": 4, "ipus_per_replica": 4},
           "vit_base_gpu": {"job": "pretrain"}}

# (change to pod64.yml, expected line, expected key path, words of the message)
POD64_ERRORS = [  # lines counted with the file's first line, the yaml-language-server schema comment
    ("  connect_timeout: 10", "  conect_timeout: 10", 9, "ssh.conect_timeout", "unknown key; did you mean 'connect_timeout'? (allowed keys here are connect_timeout"),
    ("  connect_timeout: 10", "  port: 70000", 9, "ssh.port", "less than or equal to 65535"),
    ("  host_key_policy: strict", "  host_key_policy: yolo", 8, "ssh.host_key_policy", "'strict' or 'accept-new'"),
    ("  - pod64-host[0-3]  ", "  - pod64-host[0-3]\n  - pod64-host2  ", 12, "hosts[1].name", "listed twice"),
    ("  - pod64-host[0-3]  ", "  - name: a\n    address: 10.0.0.1\n  - name: b\n    address: 10.0.0.1\n  ", 14, "hosts[1].address", "same machine"),
    ("  - pod64-host[0-3]  ", "  - pod64-host[3-0]  ", 11, "hosts[0].name", "counts backwards"),
    ("  - pod64-host[0-3]  ", "  - 'a;rm -rf /'  ", 11, "hosts[0].name", "is not a host name"),
    ("  - pod64-host[0-3]  ", "  - {name: 'h[0-3]', address: 1.2.3.4}  ", 11, "hosts[0].address", "one address for the 4 hosts"),
    ("controller: pod64-host0", "controller: pod64-host9", 12, "controller", "not one of the hosts"),
    ("pod64: {ipus: 64", "pod64: {ipus: 32", 34, "jobs.pretrain", "16 x 4 = 64 IPUs but partition 'pod64' has 32"),
    ("instances: 4\n  finetune", "instances: 3\n  finetune", 39, "jobs.pretrain.instances", "do not divide 16 replicas"),
    ("instances: 4\n  finetune", "instances: 2\n  finetune", 39, "jobs.pretrain.instances", "2 instances cannot spread evenly over 4 hosts"),
    ("partition: pod64\n", "partition: pod65\n", 36, "jobs.pretrain.partition", "unknown partition 'pod65'"),
    ("  pretrain:\n    config", "  pretrain:\n    consumes: validate\n    config", 35, "jobs.pretrain.consumes", "cycle (pretrain -> validate -> finetune -> pretrain)"),
    ("    consumes: pretrain", "    consumes: finetune", 46, "jobs.finetune.consumes", "cycle (finetune -> finetune)"),
    ("    consumes: pretrain", "    consumes: train", 46, "jobs.finetune.consumes", "'train' is not a job"),
    ("config: vit_base_pod64", "config: vit_huge", 35, "jobs.pretrain.config", "unknown config 'vit_huge'"),
    ("config: vit_base_pod64", "config: vit_base_finetune", 35, "jobs.pretrain.config", "is a finetune config but job pretrain needs a pretrain config"),
    ("replicas: 16\n    ipus_per_replica: 4", "replicas: 32\n    ipus_per_replica: 2", 37, "jobs.pretrain.replicas", "disagrees with config 'vit_base_pod64' (replica: 16)"),
    ("instances: 4\n  finetune", "nproc_per_node: 4\n  finetune", 39, "jobs.pretrain.nproc_per_node", "for torchrun inventories"),
    ("  pretrain:\n    config: vit_base_pod64\n", "  pretrain:\n", 34, "jobs.pretrain.config", "required"),
    ("  finetune:\n", "  fintune:\n", 40, "jobs.fintune", "did you mean 'finetune'? (allowed keys here are finetune, pretrain, validate)"),
    ("env:\n", "env:\n  BAD-NAME: 1\n", 32, "env.BAD-NAME", "not a shell variable name"),
    ("env:\n", "env:\n  TOKEN: {value: x, secrett: true}\n", 32, "env.TOKEN.secrett", "did you mean 'secret'? (allowed keys here are secret, value)"),
    ("name: pod64", "name: [pod64", 5, "", "YAML syntax error"),
    ("cluster:\n", "clusters:\n", 13, "clusters", "unknown key"),
    ("  timeout: 3600 ", "  timeout: -1 ", 16, "cluster.timeout", "greater than or equal to 1"),
    ("  interface: enp65s0f0np0", "  interface: 'eth0; reboot'", 30, "network.interface", "not a network interface name"),
]


@pytest.mark.parametrize("old, new, line, key, words", POD64_ERRORS, ids=[e[3] or e[4] for e in POD64_ERRORS])
def test_errors_point_at_file_line_and_key(tmp_path, old, new, line, key, words):
    assert old in POD64, old
    path = tmp_path / "pod64.yml"
    path.write_text(POD64.replace(old, new, 1))
    with pytest.raises(InventoryError) as err:
        load_inventory(path, config_names=CONFIGS)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: " + (f"{key}: " if key else "")), message
    assert words in message and "\n" not in message


def test_torchrun_topology_errors(tmp_path):
    with pytest.raises(InventoryError, match=r"gpu.yml:\d+: jobs.pretrain.replicas: replicas 12 != 2 hosts x nproc_per_node 8"):
        parse_inventory(GPU.replace("replicas: 16", "replicas: 12"), tmp_path / "gpu.yml")
    with pytest.raises(InventoryError, match="runs 9 processes per host but host 'gpu01' has 8 slots"):
        parse_inventory(GPU.replace("nproc_per_node: 8\n    replicas: 16", "nproc_per_node: 9"), tmp_path / "gpu.yml")
    with pytest.raises(InventoryError, match="jobs.pretrain.partition: partition is for poprun inventories"):
        parse_inventory(GPU.replace("nproc_per_node: 8\n    replicas: 16", "partition: x"), tmp_path / "gpu.yml")


def test_file_problems_are_inventory_errors(tmp_path):
    with pytest.raises(InventoryError, match="cannot read the inventory"):
        load_inventory(tmp_path / "missing.yml")
    (tmp_path / "bin.yml").write_bytes(b"name: \xff\xfe")
    with pytest.raises(InventoryError, match="not UTF-8"):
        load_inventory(tmp_path / "bin.yml")
    (tmp_path / "obj.yml").write_text("name: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(InventoryError, match=re.escape(f"{tmp_path / 'obj.yml'}:1: YAML syntax error")):
        load_inventory(tmp_path / "obj.yml")
    (tmp_path / "list.yml").write_text("- a\n")
    with pytest.raises(InventoryError, match="is a YAML mapping"):
        load_inventory(tmp_path / "list.yml")


def test_the_documented_inventory_example_is_valid(tmp_path):
    text = (ROOT / "docs" / "reference" / "inventory.md").read_text()
    section = text[text.index("<!-- inventory -->"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    inv = parse_inventory(block, tmp_path / "example.yml")
    assert [h.name for h in inv.hosts] == [f"pod64-host{i}" for i in range(4)]
    assert inv.env["WANDB_API_KEY"].secret and inv.jobs["validate"].consumes == "finetune"
