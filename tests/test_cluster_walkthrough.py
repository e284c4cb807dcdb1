"""The README's "Your first cluster", command by command, on the loopback sshd cluster.

The commands are read from the README's walk-through section (as tests/test_readme_commands.py reads
every command line), in order, and run for real from a copy of the project (so that "change code,
deploy again" can change code): check -> setup -> deploy -> pretrain --detach -> logs --follow ->
status -> tensorboard --print -> fetch -> finetune --from -> stop -> (a file changed) deploy -> check.
Only the example inventory and run id are replaced: by a loopback inventory whose hosts' workdirs do
not exist yet, and by the id the pretraining printed. Every command must exit 0."""
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest
import yaml

from cluster_fixtures import prepare_source, run_processes

pytestmark = [pytest.mark.cluster, pytest.mark.walkthrough]

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE_INVENTORY = "inventories/gpu-cluster.yml"
EXAMPLE_RUN = "20261127-061400-8522"
QUICK = ["--generated_data", "true", "--generated_size", "96", "--epochs", "1", "--batch_size", "16",
         "--print_freq", "1", "--num_workers", "0"]


def walkthrough(page: str = "README.md") -> list[list[str]]:
    """The mae-launch command lines of the README's "Your first cluster" (or PAGE's), in order (argv after
    the name)."""
    section = (ROOT / page).read_text().split("## Your first cluster", 1)[1].split("\n## ", 1)[0]
    lines = [line.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)
             for line in block.splitlines()]
    return [shlex.split(line, comments=True)[1:] for line in lines if line.startswith("mae-launch ")]


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_walk_through_is_the_whole_path(page):
    names = [argv[0] for argv in walkthrough(page)]
    assert names == ["check", "setup", "deploy", "pretrain", "logs", "status", "tensorboard", "fetch",
                     "finetune", "stop", "deploy", "check"], names


def _inventory(cluster, tmp_path) -> pathlib.Path:
    data = cluster.inventory_data()
    for h in data["hosts"]:
        h["workdir"] = str(tmp_path / f"work-{h['name']}")  # new: setup is the first to write there
    data["paths"]["data"] = None
    data["jobs"] = {"pretrain": {"config": "digits_pretrain", "nproc_per_node": 1, "args": QUICK},
                    "finetune": {"config": "digits_finetune", "nproc_per_node": 1, "consumes": "pretrain",
                                 "args": QUICK[:4] + ["--epochs", "500", "--batch_size", "16", "--num_workers", "0"]}}
    path = tmp_path / "first-cluster.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_your_first_cluster_runs_as_written(cluster, tmp_path):
    project = prepare_source(tmp_path / "project")
    inventory = _inventory(cluster, tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200", "MAE_LAUNCH_RUNS_DIR": str(tmp_path / "runs")}
    env.pop("MAE_LAUNCH_INVENTORY", None)
    run_id, deploys, finetune_id = None, 0, None
    try:
        for argv in walkthrough():
            argv = [str(inventory) if a == EXAMPLE_INVENTORY else run_id if a == EXAMPLE_RUN else a for a in argv]
            if argv[0] == "deploy":
                deploys += 1
                if deploys == 2:  # step 10: the code changed since the first deploy
                    with open(project / "mae" / "__init__.py", "a") as f:
                        f.write("# changed after the first deploy\n")
            p = subprocess.run([sys.executable, "-m", "launcher", *argv], cwd=project, env=env,
                               capture_output=True, text=True, timeout=600)
            said = f"mae-launch {shlex.join(argv)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
            assert p.returncode == 0, said
            if argv[0] == "pretrain":
                run_id = re.search(r"^run (\S+): pretrain", p.stdout, re.M).group(1)
            if argv[0] == "finetune":
                finetune_id = re.search(r"^run (\S+): finetune", p.stdout, re.M).group(1)
            if argv[0] == "status":
                assert f"run {run_id}: pretrain (succeeded)" in p.stdout, said
            if argv[0] == "stop":
                assert f"stop {finetune_id}" in p.stdout and p.stdout.count("nothing left") == 3, said
            if argv[0] == "deploy" and deploys == 2:
                assert p.stdout.count("deployed") == 3, said
            if argv[0] == "check" and deploys == 2:
                assert "all checks passed" in p.stdout and p.stdout.count("up to date") == 3, said
    finally:
        for rid in (run_id, finetune_id):
            if rid and run_processes(rid):
                subprocess.run([sys.executable, "-m", "launcher", "stop", rid], cwd=project, env=env, timeout=120)
    record = json.loads((tmp_path / "runs" / finetune_id / "run.json").read_text())
    assert record["jobs"][0]["state"] == "stopped"
    assert (tmp_path / "runs" / run_id).is_dir()
