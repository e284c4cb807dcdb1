"""Launches refused before anything starts, on the loopback sshd cluster: a `paths.data` missing on
the hosts and a mistyped program argument (`-- --epoch 2`) each end in one `error:` line and exit 2,
with no job started on any host and no run recorded (launcher/prelaunch.py). A job on generated data
is not refused for a missing data path: tests/test_cluster_run.py runs those with `data/digits`
absent from the hosts."""
import json
import pathlib
import secrets

import pytest

from cluster_fixtures import TINY, run_cli, run_processes, tiny_jobs

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

_TOKEN = secrets.token_hex(3)
# TINY without --generated_data: the job reads its data path
READS_DATA = [a for a in TINY if a not in ("--generated_data", "true")]


def _nothing_started(cluster, runs_dir, run_id):
    assert not list(pathlib.Path(runs_dir["MAE_LAUNCH_RUNS_DIR"]).iterdir()), "a run was recorded"
    for h in cluster.hosts:
        assert not (h.workdir / "runs" / run_id).exists(), f"{h.name}: a job script was written"
        assert not (h.workdir / "output" / run_id).exists(), f"{h.name}: the job wrote output"
    assert not run_processes(run_id)


def _one_error_line(p) -> str:
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2, p.stdout + p.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert "Traceback" not in p.stdout + p.stderr and "ChildFailedError" not in p.stdout + p.stderr
    return lines[0]


def test_a_missing_data_path_is_refused_on_the_hosts_before_the_launch(cluster, deployed, runs_dir, tmp_path):
    paths = {"venv": str(cluster.venv), "data": "no/such/data", "output": "output"}
    inv = cluster.write_inventory(tmp_path / "nodata.yml", jobs=tiny_jobs(READS_DATA), paths=paths)
    run_id = f"nodata-{_TOKEN}"
    p = run_cli(["pretrain", "-i", inv, "--run-id", run_id], env_extra=runs_dir, timeout=180)
    line = _one_error_line(p)
    assert line.startswith("error: pretrain not started: data path not found: "), line
    for h in cluster.hosts[:3]:  # each host named with the path it looked for (a workdir each)
        assert f"{h.name} {h.workdir}/no/such/data" in line, line
    assert f"set paths.data in {inv}" in line
    _nothing_started(cluster, runs_dir, run_id)
    # `check` runs the same probe and names the path it looked for
    c = run_cli(["check", "-i", inv, "--min-free-gb", "0", "--json"], timeout=180)
    hosts = json.loads(c.stdout)["hosts"]
    for h in cluster.hosts:
        assert hosts[h.name]["data"] == {"ok": False, "text": f"{h.workdir}/no/such/data not found"}


def test_a_mistyped_program_argument_is_refused_before_the_launch(cluster, deployed, runs_dir, tmp_path):
    inv = cluster.write_inventory(tmp_path / "typo.yml", jobs=tiny_jobs())
    run_id = f"typo-{_TOKEN}"
    p = run_cli(["pretrain", "-i", inv, "--run-id", run_id, "--", "--epoch", "2"], env_extra=runs_dir, timeout=180)
    line = _one_error_line(p)
    assert line == (f"error: pretrain not started: python -m mae.pretrain refuses its arguments: unknown config "
                    f"key 'epoch' (flag --epoch); did you mean --epochs? (the job's args in {inv}, or the "
                    "arguments after --)"), line
    _nothing_started(cluster, runs_dir, run_id)
    # a pipeline checks every stage before it records anything
    p = run_cli(["pipeline", "-i", inv, "--run-id", run_id + "p", "--", "--epoch", "2"], env_extra=runs_dir,
                timeout=180)
    assert "did you mean --epochs?" in _one_error_line(p)
    _nothing_started(cluster, runs_dir, run_id + "p")
