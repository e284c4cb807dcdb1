"""`mae-launch inventory new` without a cluster: reading OpenSSH configs (Host lines, Include,
patterns), DeepSpeed/MPI hostfiles and Slurm's partition listings; what is written and what is
refused. On the loopback cluster, tests/test_cluster_inventory_new.py runs `check` on the results."""
import pytest
import yaml
from click.testing import CliRunner

from launcher import hostfile, slurminfo, sshhosts
from launcher.cli import main
from launcher.errors import UserError
from launcher.inventory import load_inventory


def test_ssh_config_hosts_follow_include_and_skip_patterns(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("Host gpu03 gpu04\n  HostName 10.0.0.3\nMatch all\n")
    (tmp_path / "conf.d" / "a.conf").write_text("host=gpu02\n")
    config = tmp_path / "config"
    config.write_text(f"# mine\nHost gpu01 *.lab !bad\n  Port 2222\nInclude {tmp_path}/conf.d/*.conf\n"
                      "Host login ?x\nHost gpu01\n")
    assert sshhosts.aliases(config) == ["gpu01", "gpu02", "gpu03", "gpu04", "login"]
    names = sshhosts.aliases(config)
    assert sshhosts.matching(names, "gpu*,!gpu03") == ["gpu01", "gpu02", "gpu04"]
    assert sshhosts.matching(names, "LOG?N") == ["login"]
    config.write_text(f"Include {config}\n")
    with pytest.raises(UserError, match="Include nested more than 16 levels"):
        sshhosts.aliases(config)


def test_another_config_file_is_named_in_the_inventory(tmp_path):
    """Hosts by name; the config they are defined in becomes ssh.ssh_config, which OpenSSH's look-up
    of each name (ssh -G -F) then reads: no setting is copied out of it."""
    config = tmp_path / "config"
    config.write_text("Host a\n  HostName 10.1.2.3\n  Port 2201\nHost b\n  ProxyJump a\n")
    out = tmp_path / "mine.yml"
    res = _new(tmp_path, "--from-ssh-config", "*", "--ssh-config", config, "-o", out)
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    assert data["hosts"] == [{"name": "a"}, {"name": "b"}] and data["ssh"] == {"ssh_config": str(config)}
    inv = load_inventory(out)
    assert [h.ssh_config for h in inv.hosts] == [str(config)] * 2


def test_hostfile_lines_and_mistakes():
    text = "# DeepSpeed\nworker-1 slots=4\n\nworker-2 slots=4 max_slots=8  # MPI\n"
    assert hostfile.parse(text, "hf") == [("worker-1", 4), ("worker-2", 4)]
    assert hostfile.common_slots(hostfile.parse(text, "hf"), "hf") == 4
    for bad, words in [("w1\n", "hf:1: host 'w1' has no slots=N"), ("w1 slots=0\n", "'slots=0' is not understood"),
                       ("w1 slots=2\nw1 slots=2\n", "hf:2: host 'w1' is listed twice"), ("# none\n", "no host"),
                       ("-oProxyCommand=x slots=1\n", "is not a host name")]:
        with pytest.raises(UserError, match=words):
            hostfile.parse(bad, "hf")
    with pytest.raises(UserError, match=r"different slots \(a: 8, b: 4\)"):
        hostfile.common_slots([("a", 8), ("b", 4)], "hf")


# scontrol(1), EXAMPLES (slurm-wlm's manual page): `show partition` wraps a record over indented lines
SCONTROL_SHOW_PART = """PartitionName=debug
   AllocNodes=ALL AllowGroups=ALL Default=YES
   DefaultTime=NONE DisableRootJobs=NO Hidden=NO
   MaxNodes=UNLIMITED MaxTime=UNLIMITED MinNodes=1
   Nodes=snowflake[0-48]
   Priority=1 RootOnly=NO OverSubscribe=YES:4
   State=UP TotalCPUs=694 TotalNodes=49
"""
# the same record and a second one as `scontrol --oneliner show partition` prints them
ONELINER = ("PartitionName=gpu AllocNodes=ALL Default=NO MaxTime=2-00:00:00 Nodes=g[01-04] State=UP TotalNodes=4\n"
            + " ".join(SCONTROL_SHOW_PART.split()) + "\n")


def test_slurm_partitions_and_gpus_from_scontrol_and_sinfo():
    [debug] = slurminfo.parse_partitions(SCONTROL_SHOW_PART)
    assert (debug["PartitionName"], debug["Default"], debug["TotalNodes"], debug["MaxTime"]) == ("debug", "YES", "49", "UNLIMITED")
    parts = slurminfo.parse_partitions(ONELINER)
    assert [p["PartitionName"] for p in parts] == ["gpu", "debug"]
    assert slurminfo.pick(parts)["PartitionName"] == "debug"          # Default=YES
    assert slurminfo.pick(parts, "gpu")["MaxTime"] == "2-00:00:00"
    with pytest.raises(UserError, match=r"no partition 'cpu' \(partitions: gpu, debug\)"):
        slurminfo.pick(parts, "cpu")
    # sinfo --format %G: one line per distinct gres set of the partition's nodes (sinfo(1), %G)
    assert slurminfo.gpus_per_node("gpu:8\n") == 8
    assert slurminfo.gpus_per_node("gpu:a100:4(S:0-1)\ngpu:a100:8(S:0-1),nvme:1\n") == 8
    assert slurminfo.gpus_per_node("(null)\n") is None


def _new(tmp_path, *args):
    return CliRunner().invoke(main, ["inventory", "new", "mine", *map(str, args)])


def test_hostfile_inventory_is_valid_and_never_overwritten(tmp_path):
    hf = tmp_path / "hostfile"
    hf.write_text("node1 slots=8\nnode2 slots=8\n")
    out = tmp_path / "mine.yml"
    res = _new(tmp_path, "--hostfile", hf, "-o", out, "--ssh-config", "/dev/null")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [f"wrote {out}", f"next: mae-launch check -i {out}"]
    text = out.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    inv = load_inventory(out)
    assert [h.name for h in inv.hosts] == ["node1", "node2"] and inv.jobs["pretrain"].nproc_per_node == 8
    hf.write_text("other slots=1\n")
    res = _new(tmp_path, "--hostfile", hf, "-o", out, "--ssh-config", "/dev/null")
    assert res.exit_code == 2 and out.read_text() == text
    assert res.output.splitlines() == [f"error: {out} already exists; mae-launch never overwrites an inventory: "
                                       "give another name or --output PATH"]


def test_hostfile_without_any_ssh_config(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))                  # no ~/.ssh/config at all
    (tmp_path / "hf").write_text("10.0.0.1 slots=2\n10.0.0.2 slots=2\n")
    res = _new(tmp_path, "--hostfile", tmp_path / "hf", "-o", tmp_path / "mine.yml")
    assert res.exit_code == 0, res.output
    assert yaml.safe_load((tmp_path / "mine.yml").read_text())["hosts"] == [
        {"name": "10.0.0.1", "slots": 2}, {"name": "10.0.0.2", "slots": 2}]


def test_own_ssh_config_gives_names_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host gpu01 gpu02\n  User mae\n  HostName 10.0.0.1\n"
                                              "Host gpu02\n  UserKnownHostsFile /etc/lab_known_hosts\n")
    out = tmp_path / "mine.yml"
    res = _new(tmp_path, "--from-ssh-config", "gpu*", "-o", out)
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(out.read_text())
    assert data["hosts"] == [{"name": "gpu01"}, {"name": "gpu02"}] and "ssh_config" not in (data.get("ssh") or {})
    assert "what OpenSSH\n# makes of that name (ssh -G)" in out.read_text()


@pytest.mark.parametrize("args, words", [
    (["--hostfile", "hf", "--slurm"], "give one source"),
    ([], "give one source"),
    (["--from-ssh-config", "nothing*", "--ssh-config", "cfg"], "no Host in"),
    (["--hostfile", "hf", "--launcher", "poprun"], "torchrun inventories only"),
    (["--hostfile", "missing"], "cannot read the hostfile missing"),
])
def test_refusals_are_one_line(tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hf").write_text("a slots=1\n")
    (tmp_path / "cfg").write_text("Host a\n")
    res = _new(tmp_path, *args)
    assert res.exit_code == 2 and len(res.output.splitlines()) == 1 and words in res.output, res.output
    assert not (tmp_path / "mine.yml").exists()


@pytest.mark.parametrize("gres, gpus", [("gpu:8\n", 8), ("(null)\n", None)])
def test_slurm_inventory_from_captured_output_is_valid(tmp_path, gres, gpus):
    """The --slurm text for a partition as scontrol/sinfo print it (captured output above: no Slurm
    runs here; tests/test_slurm_inventory_new.py asks the real Slurm test cluster)."""
    from launcher import newinventory
    found = slurminfo.section(slurminfo.pick(slurminfo.parse_partitions(ONELINER)), gres)
    req = newinventory.Request(name="hpc", path=tmp_path / "hpc.yml", slurm=True)
    text = newinventory.render(req, slurm_found=found)
    (tmp_path / "hpc.yml").write_text(text)
    inv = load_inventory(tmp_path / "hpc.yml")
    assert inv.scheduler == "slurm" and inv.slurm.partition == "debug" and inv.slurm.gpus_per_node == gpus
    assert "(the partition allows UNLIMITED)" in text and "(49 nodes)" in text
    assert inv.jobs["pretrain"].nproc_per_node == (gpus or 1)


def test_a_name_that_is_not_plain_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hf").write_text("a slots=1\n")
    res = CliRunner().invoke(main, ["inventory", "new", "../my x", "--hostfile", "hf"])
    assert res.exit_code == 2 and res.output.startswith("error: inventory name '../my x' is not a plain name"), res.output
    assert list(tmp_path.iterdir()) == [tmp_path / "hf"]
