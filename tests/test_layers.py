"""The launcher's layers: every module is imported, and every import goes strictly downward.

LAYERS lists the launcher's modules from the top (the command line) to the bottom (pure data); a
module may import only modules of later layers. The same order is described in the documentation's
Layers page (docs/design/layers.md). A new module must be placed here, or this test fails.
"""
import ast
import importlib
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LAYERS = [
    ["__main__"],
    ["cli"],
    ["cli_hosts", "cli_jobs", "cli_render", "cli_runs", "cli_fetch", "cli_exec", "cli_bench",
     "cli_inventory"],                                         # commands: parse, call, print
    ["cli_slurm"],                                             # status/logs/stop of Slurm runs
    ["options", "benchjob"],                                   # benchjob: a benchmark variant as a job
    ["completion"],                                            # shell completion of run ids, jobs, hosts, inventories
    ["orchestrate", "control", "retrieve", "benchrun", "benchresults"],  # run a job / pipeline; act on runs; benchmarks
    ["slurm_orchestrate"],                                     # submit / follow Slurm jobs
    ["slurm_supervise"],                                       # follow one Slurm job
    ["supervise"],                                             # follow a run, fail fast
    ["hostops", "slurmops", "artifacts", "deploy", "check", "fetch", "execute", "setup", "clean",
     "prelaunch"],  # operations on hosts
    ["workdirs", "rendezvous"],                                # is a workdir ours to replace? the rendezvous address
    ["buildshare", "openssh"],                                 # compile once; multiplexed OpenSSH
    ["plan", "provision"],                                     # inventory x job x run -> JobPlan
    ["backends"],
    ["backends.torchrun", "backends.poprun", "backends.single", "backends.slurm"],
    ["backends.base"],
    ["runs"],                                                  # typed run records and their store
    ["remote"],                                                # transport: Target, fan-out
    ["ssh", "keptshell"],                                      # keptshell: one long-lived shell per host for polls
    ["chanread"],                                              # reading a paramiko channel (no OS pipe)
    ["newinventory", "inventoryschema"],                       # inventory new / inventory schema
    ["report", "logs", "layout", "benchspec"],                 # what people read; benchmark specs
    ["render", "knownhosts", "sshconf"],                       # sshconf: OpenSSH's view of a host (ssh -G)
    ["adjust"],                                                # launch adjustments (--host, --env, -- ARGS)
    ["inventory"],
    ["model"],                                                 # Host, Job, Inventory: the resolved inventory
    ["messages", "selection", "sshhosts", "hostfile", "slurminfo"],  # hosts written down elsewhere
    ["schema", "yamlfile"],
    ["jobs", "paths", "hostrange", "errors", "addresses", "ownfiles"],  # pure data and small types
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules() -> dict:
    found = {}
    for path in sorted((ROOT / "launcher").rglob("*.py")):
        rel = path.relative_to(ROOT / "launcher").with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found[".".join(parts)] = path
    return found


def _imports(name: str, path: pathlib.Path) -> set:
    """Launcher modules imported by module `name` (relative names, e.g. 'backends.base')."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "launcher":
            base = node.module.split(".", 1)[1] if "." in node.module else ""
            for alias in node.names:
                full = f"{base}.{alias.name}" if base else alias.name
                out.add(full if full in LAYER else base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("launcher."):
                    out.add(alias.name.split(".", 1)[1])
    out.discard("")
    out.discard(name)
    return out


def test_every_module_has_a_layer_and_imports():
    modules = _modules()
    assert sorted(set(modules) - set(LAYER)) == [], "place new launcher modules in LAYERS"
    assert sorted(set(LAYER) - set(modules)) == [], "LAYERS names modules that do not exist"
    for name in modules:
        importlib.import_module(f"launcher.{name}")


@pytest.mark.parametrize("name", sorted(_modules()))
def test_imports_go_only_downward(name):
    for target in _imports(name, _modules()[name]):
        assert target in LAYER, f"launcher.{name} imports unknown launcher module {target!r}"
        assert LAYER[target] > LAYER[name], (
            f"launcher.{name} (layer {LAYER[name]}) imports launcher.{target} (layer {LAYER[target]}): "
            "imports must go to a lower layer")


def test_the_layer_check_catches_an_upward_import(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from launcher import cli\nfrom launcher.backends.base import Launch\n")
    assert _imports("runs", bad) == {"cli", "backends.base"}
    assert LAYER["cli"] < LAYER["runs"]  # runs importing cli would fail test_imports_go_only_downward
