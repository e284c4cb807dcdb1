"""What the submit host's Slurm says about its partitions, for `mae-launch inventory new --slurm`.

`scontrol show partition` prints one record per partition as `Key=Value` words (a record starts
at `PartitionName=`; with `-o` each record is one line, without it the words wrap over indented
lines: scontrol(1), EXAMPLES). `sinfo --noheader --format %G` prints the generic resources of the
nodes of a partition, e.g. `gpu:8` or `gpu:a100:4(S:0-1)` (sinfo(1), %G). Both are run here, on the
submit host, each with a timeout.
"""
import re
import subprocess

from launcher.errors import UserError

TIMEOUT = 20  # seconds for one sinfo / scontrol (they ask slurmctld over the network)
_GPU = re.compile(r"(?:^|,)gpu(?::[^:,()]+)?:(\d+)")


def parse_partitions(text: str) -> list:
    """[{key: value}] of `scontrol show partition` output, one dict per partition."""
    records = []
    for word in text.split():
        key, sep, value = word.partition("=")
        if not sep:
            continue
        if key == "PartitionName":
            records.append({})
        if records:
            records[-1][key] = value
    return records


def gpus_per_node(text: str):
    """The most GPUs a node has, from `sinfo --format %G` lines (None when no node has a gpu gres)."""
    counts = [int(m.group(1)) for line in text.split() for m in _GPU.finditer(line.split("(")[0])]
    return max(counts) if counts else None


def pick(partitions: list, name=None) -> dict:
    """The partition named `name`, else the default one (Default=YES), else the first."""
    if not partitions:
        raise UserError("scontrol show partition lists no partition; ask the cluster's administrators which to use")
    if name is not None:
        for p in partitions:
            if p.get("PartitionName") == name:
                return p
        known = ", ".join(p.get("PartitionName", "?") for p in partitions)
        raise UserError(f"Slurm has no partition {name!r} (partitions: {known}); name one of them with --partition")
    return next((p for p in partitions if p.get("Default") == "YES"), partitions[0])


def _run(argv: list) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed here; run `mae-launch inventory new --slurm` on the cluster's submit (login) host") from None
    except subprocess.TimeoutExpired:
        raise UserError(f"`{' '.join(argv)}` did not answer in {TIMEOUT} s; is slurmctld reachable from this host?") from None
    if p.returncode != 0:
        why = " ".join(p.stderr.split())[:300] or f"exit status {p.returncode}"
        raise UserError(f"`{' '.join(argv)}` failed ({why}); run this on the cluster's submit host, where Slurm answers")
    return p.stdout


def section(chosen: dict, gres_text: str) -> dict:
    """The inventory's `slurm:` values for one partition record and its nodes' `sinfo %G` lines,
    with `notes` (total nodes, time limit) for the comments."""
    section = {"partition": chosen.get("PartitionName"), "nodes": 1, "gpus_per_node": gpus_per_node(gres_text)}
    return {"slurm": section, "notes": {"nodes": chosen.get("TotalNodes"), "time": chosen.get("MaxTime")}}


def slurm_section(partition=None) -> dict:
    """`section` of the partition named (default: the default one), asked of this host's Slurm."""
    chosen = pick(parse_partitions(_run(["scontrol", "--oneliner", "show", "partition"])), partition)
    return section(chosen, _run(["sinfo", "--noheader", "--partition", chosen.get("PartitionName", ""), "--format", "%G"]))
