"""No value can break out of shell quoting: hostile strings travel through real rendered job scripts.

Each script is run by bash with harmless stand-ins for torchrun / poprun / python3 (they record the
argv and environment they receive as JSON), so the test proves every value arrives as one literal
argument, nothing is executed from it, and logs and exit files land where the plan says.
One test runs the real torchrun with the per-rank log wrapper.
"""
import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from launcher.inventory import load_inventory
from launcher.plan import plan_job
from launcher.render import q
from launcher.schema import EnvValue

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_render import words  # noqa: E402  (bash splits rendered commands)
EVIL = "x'y\"z $(touch PWNED1) `touch PWNED2` ;touch PWNED3; \\ * ? $HOME ${IFS} \n-- é|&>o<i"
EVIL_NAME = "h$(touch PWNED4)`touch PWNED5`;'\"\n*"  # bypasses inventory validation on purpose

RECORDER = f"""#!{sys.executable}
import json, os, sys
name = os.path.basename(sys.argv[0])
rank = os.environ.get("RANK", "0")
keys = ("EVIL", "EMPTY", "SDK_SOURCED", "MAE_LAUNCH_HOST", "GLOO_SOCKET_IFNAME", "IPUOF_VIPU_API_PARTITION_ID")
record = {{"argv": sys.argv[1:], "cwd": os.getcwd(), "env": {{k: os.environ.get(k) for k in keys}}}}
with open(os.path.join(os.environ["FAKE_OUT"], name + "." + rank + ".json"), "w") as f:
    json.dump(record, f)
print("hello from", name, "rank", rank)
if name == "torchrun":  # start the worker command once per local rank, as torchrun does
    import subprocess
    argv = sys.argv[1:]
    nproc = int(next(a for a in argv if a.startswith("--nproc_per_node=")).split("=")[1])
    node = int(next(a for a in argv if a.startswith("--node_rank=")).split("=")[1])
    worker = argv[argv.index("--no-python") + 1:]
    codes = [subprocess.call(worker, env=dict(os.environ, RANK=str(node * nproc + r), LOCAL_RANK=str(r)))
             for r in range(nproc)]
    sys.exit(max(codes))
sys.exit(int(os.environ.get("FAKE_RC", "0")))
"""


def make_inventory(tmp_path, launcher="torchrun", job=None, hosts=None):
    workdir = tmp_path / ("work " + EVIL.replace("/", ""))
    bindir = workdir / "venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "activate").write_text('PATH="$(dirname "${BASH_SOURCE[0]}"):$PATH"\n')
    for tool in ("torchrun", "poprun", "python3"):
        (bindir / tool).write_text(RECORDER)
        (bindir / tool).chmod(0o755)
    (workdir / f"sdk{EVIL}.sh").write_text("export SDK_SOURCED=yes\n")
    doc = {
        "name": "hostile", "launcher": launcher,
        "hosts": hosts or [{"name": "localhost", "connection": "local"}],
        "paths": {"workdir": str(workdir), "venv": "venv", "sdk_enable": [f"sdk{EVIL}.sh"],
                  "data": f"data{EVIL}", "output": f"out{EVIL}", "executable_cache": f"cache{EVIL}"},
        "network": {"interface": "lo"},
        "env": {"EVIL": EVIL, "EMPTY": "", "TOKEN": {"value": EVIL + "secret", "secret": True}},
        "jobs": {"pretrain": job or {"config": "digits_pretrain", "nproc_per_node": 2,
                                     "args": [EVIL, "--x=$(touch PWNED6)", "", "'", '"', "\n", "-"],
                                     "launcher_args": ["--monitor-interval=1"]}},
    }
    if launcher == "poprun":
        doc["cluster"] = {"vipu_server_host": "vipu", "allocation": "alloc"}
        doc["partitions"] = {"part": {"ipus": 4}}
    path = tmp_path / "hostile.yml"
    path.write_text(yaml.safe_dump(doc))
    return load_inventory(path, config_names={"digits_pretrain": {"job": "pretrain"}}), workdir


def run_script(tmp_path, hp, plan, rc=0):
    out = tmp_path / "fake-out"
    out.mkdir(exist_ok=True)
    script = tmp_path / "job.sh"
    script.write_text(hp.script)
    secrets = Path(hp.secrets_path)
    secrets.parent.mkdir(parents=True, exist_ok=True)
    secrets.write_text(plan.secrets_file_text())
    env = {k: v for k, v in os.environ.items() if k not in ("EVIL", "TOKEN")}
    env.update(FAKE_OUT=str(out), FAKE_RC=str(rc), HOME=str(tmp_path / "home"))
    res = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert not [p for p in tmp_path.rglob("PWNED*")], "a hostile value was executed"
    assert not secrets.exists(), "the secrets file must be deleted once sourced"
    return res, {p.name: json.loads(p.read_text()) for p in out.glob("*.json")}


def test_torchrun_script_passes_hostile_values_verbatim(tmp_path):
    inv, workdir = make_inventory(tmp_path)
    host = dataclasses.replace(inv.hosts[0], name=EVIL_NAME)
    inv = dataclasses.replace(inv, hosts=[host], controller=host)
    plan = plan_job(inv, "pretrain", "r1")
    (hp,) = plan.hosts
    assert EVIL + "secret" not in hp.script
    res, seen = run_script(tmp_path, hp, plan)
    assert res.returncode == 0, Path(hp.log_path).read_text()
    expected = ["-m", "mae.pretrain", "--config", "digits_pretrain", "--data_path", f"{workdir}/data{EVIL}",
                "--output_dir", f"{workdir}/out{EVIL}/r1/pretrain",
                EVIL, "--x=$(touch PWNED6)", "", "'", '"', "\n", "-"]
    assert seen["torchrun.0.json"]["argv"][7] == "--monitor-interval=1"
    for rank in (0, 1):
        record = seen[f"python3.{rank}.json"]
        assert record["argv"] == expected
        assert record["cwd"] == str(workdir)
        assert record["env"] == {"EVIL": EVIL, "EMPTY": "", "SDK_SOURCED": "yes", "MAE_LAUNCH_HOST": EVIL_NAME,
                                 "GLOO_SOCKET_IFNAME": "lo", "IPUOF_VIPU_API_PARTITION_ID": None}
        assert Path(hp.rank_logs[rank]).read_text() == f"hello from python3 rank {rank}\n"
    assert Path(hp.exit_path).read_text() == "0\n"
    assert Path(hp.pid_path).read_text().strip().isdigit()
    assert "hello from torchrun" in Path(hp.log_path).read_text()
    assert Path(plan.output_dir).is_dir()


def test_exit_status_is_recorded_when_the_job_fails(tmp_path):
    inv, _ = make_inventory(tmp_path)
    plan = plan_job(inv, "pretrain", "r2")
    res, _ = run_script(tmp_path, plan.hosts[0], plan, rc=3)
    assert res.returncode == 3 and Path(plan.hosts[0].exit_path).read_text() == "3\n"


def test_poprun_and_single_process_scripts_pass_hostile_values_verbatim(tmp_path):
    job = {"config": "digits_pretrain", "partition": "part", "replicas": 2, "ipus_per_replica": 2,
           "instances": 2, "args": [EVIL], "launcher_args": [EVIL]}
    inv, workdir = make_inventory(tmp_path / "p", launcher="poprun", job=job)
    plan = plan_job(inv, "pretrain", "r1")
    res, seen = run_script(tmp_path / "p", plan.hosts[0], plan)
    assert res.returncode == 0 and plan.mode == "poprun"
    argv = seen["poprun.0.json"]["argv"]
    assert f"--executable-cache-path={workdir}/cache{EVIL}" in argv
    assert "--mpi-local-args=-x MAE_LAUNCH_RUN_ID -x MAE_LAUNCH_TOKEN -x MAE_LAUNCH_JOB -x MAE_LAUNCH_HOST -x OPAL_PREFIX -x LD_LIBRARY_PATH -x PATH -x PYTHONPATH -x CPATH -x IPUOF_VIPU_API_TIMEOUT=3600 " \
           "-x POPLAR_LOG_LEVEL=WARN -x POPLAR_SDK_ENABLED -x POPLAR_ENGINE_OPTIONS -x EMPTY -x EVIL -x TOKEN" in argv
    assert argv[-11:] == [EVIL, "python3", "-m", "mae.pretrain", "--config", "digits_pretrain",
                          "--data_path", f"{workdir}/data{EVIL}", "--output_dir", f"{workdir}/out{EVIL}/r1/pretrain", EVIL]
    assert seen["poprun.0.json"]["env"]["EVIL"] == EVIL

    single = dict(job, replicas=1, ipus_per_replica=4, instances=1)
    inv, workdir = make_inventory(tmp_path / "s", launcher="poprun", job=single)
    plan = plan_job(inv, "pretrain", "r1")
    res, seen = run_script(tmp_path / "s", plan.hosts[0], plan)
    assert res.returncode == 0 and plan.mode == "single"
    record = seen["python3.0.json"]
    assert record["argv"][-1] == EVIL and record["env"]["IPUOF_VIPU_API_PARTITION_ID"] == "part"
    assert Path(plan.hosts[0].rank_logs[0]).read_text() == "hello from python3 rank 0\n"


@pytest.mark.slow
def test_real_torchrun_starts_each_rank_with_its_own_log(tmp_path):
    inv, workdir = make_inventory(tmp_path)
    real = Path(sys.executable).parent / "torchrun"
    bindir = workdir / "venv" / "bin"
    (bindir / "torchrun").unlink()
    (bindir / "torchrun").symlink_to(real)
    with socket.socket() as sock:  # a free port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    job = dataclasses.replace(inv.jobs["pretrain"], launcher_args=())
    inv = dataclasses.replace(inv, network=inv.network.model_copy(update={"master_port": port}),
                              jobs={"pretrain": job})
    plan = plan_job(inv, "pretrain", "r1")
    hp = plan.hosts[0]
    res, seen = run_script(tmp_path, hp, plan)
    assert res.returncode == 0, Path(hp.log_path).read_text()[-2000:]
    assert sorted(seen) == ["python3.0.json", "python3.1.json"]
    for rank in (0, 1):
        assert Path(hp.rank_logs[rank]).read_text() == f"hello from python3 rank {rank}\n"
        assert seen[f"python3.{rank}.json"]["argv"][-7] == EVIL


TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(args=st.lists(TEXT, max_size=4), data=TEXT.filter(lambda s: s.strip("/") != ""), value=TEXT)
def test_any_text_arrives_as_one_argument(args, data, value):
    """For arbitrary text in args, a data path and an env value, bash sees exactly those words."""
    inv = load_inventory(ROOT / "inventories" / "local.yml")
    job = dataclasses.replace(inv.jobs["pretrain"], args=tuple(args), data="/d/" + data.replace("/", "_"))
    env = {"VALUE": EnvValue(value=value)}
    inv = dataclasses.replace(inv, jobs={"pretrain": job}, env=env)
    (hp,) = plan_job(inv, "pretrain", "r1").hosts
    argv = words(hp.command)
    expected = ["--data_path", job.data, "--output_dir", f"{ROOT}/output/r1/pretrain", *args]
    assert argv[-len(expected):] == expected
    assert argv[argv.index("--no-python") + 1:argv.index("--no-python") + 3] == ["bash", "-c"]
    exports = subprocess.run(["bash", "-c", 'eval "$1"; printf "%s" "$VALUE"', "x", f"export VALUE={q(value)}"],
                             capture_output=True)
    assert exports.stdout.decode() == value and f"export VALUE={q(value)}\n" in hp.script


def test_secrets_file_goes_even_when_the_script_fails_early_and_run_files_are_private(tmp_path):
    inv, workdir = make_inventory(tmp_path)
    plan = plan_job(inv, "pretrain", "r-early")
    (hp,) = plan.hosts
    secrets = Path(hp.secrets_path)
    secrets.parent.mkdir(parents=True, exist_ok=True)
    secrets.write_text(plan.secrets_file_text())
    (workdir / f"sdk{EVIL}.sh").unlink()  # sourcing the SDK fails: the script ends before reading secrets
    res = subprocess.run(["bash", "-c", hp.script], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, HOME=str(tmp_path)))
    assert res.returncode != 0 and "sdk" in Path(hp.log_path).read_text()
    assert not secrets.exists(), "the EXIT trap removes the secrets file"
    assert Path(hp.exit_path).read_text().strip() != "0"
    for f in (Path(hp.log_path), Path(hp.pid_path), Path(hp.exit_path)):
        assert f.stat().st_mode & 0o077 == 0, f"{f} is readable by others"


def test_start_never_writes_the_secrets_file_through_a_symlink(tmp_path):
    from launcher.render import render_template
    run_dir = tmp_path / "runs" / "r"
    run_dir.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    secrets = run_dir / "job.h.secrets"
    secrets.symlink_to(victim)
    script = render_template("start.sh.j2", run_id="r", host="h", job="pretrain", workdir=str(tmp_path),
                             run_dir=str(run_dir), script="exit 0\n", script_path=str(run_dir / "job.h.sh"),
                             exit_path=str(run_dir / "job.h.exit"), pid_path=str(run_dir / "job.h.pid"),
                             secrets_text="TOKEN='s3cret'\n", secrets_path=str(secrets))
    res = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert victim.read_text() == "untouched\n"
    assert not secrets.is_symlink() and secrets.read_text() == "TOKEN='s3cret'\n"
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert (run_dir / "job.h.sh").stat().st_mode & 0o077 == 0
