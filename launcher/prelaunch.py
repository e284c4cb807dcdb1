"""Before a launch starts anything: the program's arguments parsed here, the data path probed on
every host that reads it. A refusal is one sentence (exit 2) and leaves nothing started, no record.

* Arguments: `python -m mae.checkargs JOB ARG...` runs here as a local process (the launcher never
  imports mae) with the arguments the controller's program gets (plan.program: the job's config,
  `--data_path`, `--output_dir`, the consumed checkpoint, the inventory's args and `-- ARGS`); it
  parses them with `python -m mae.JOB`'s own parser, without torch, and says whether the job reads
  its data path (pretraining on `--generated_data` does not).
* Data: the probe of `check` (templates/data_probe.sh.j2), one round trip per host that runs ranks,
  all hosts at once with a timeout. A host that cannot be asked is left to the launch, which
  reports it. Slurm jobs are not probed: their hosts are chosen by Slurm when the job is scheduled.
"""
from __future__ import annotations

import subprocess
import sys

from launcher import remote
from launcher.errors import UserError

ARGS_TIMEOUT = 60.0    # seconds for the local parse (a cold Python start with PyYAML: well under 1 s)
PROBE_TIMEOUT = 30.0   # seconds per host for the data probe


def check(plan, limit: int = remote.DEFAULT_LIMIT) -> None:
    """Raise UserError when `plan`'s program arguments or its data path would fail on the hosts."""
    if check_arguments(plan) and plan.mode != "slurm":
        check_data(plan, limit)


def check_arguments(plan) -> bool:
    """Parse the program's arguments as `python -m mae.JOB` will; whether the job reads its data path."""
    entry = plan.program[2]  # python3 -m mae.<job> ...
    argv = [sys.executable, "-m", "mae.checkargs", entry.rsplit(".", 1)[-1], *plan.program[3:]]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=ARGS_TIMEOUT)
    except subprocess.TimeoutExpired:
        return True  # cannot tell here: the hosts will
    if done.returncode == 2:
        lines = done.stderr.strip().splitlines() or ["(no message)"]
        raise UserError(f"{plan.job} not started: python -m {entry} refuses its arguments: {lines[-1]} "
                        f"(the job's args in {plan.inventory.source_path}, or the arguments after --)")
    return done.returncode != 0 or "reads_data=0" not in done.stdout.split()


def data_path(plan, host):
    """The data path the program gets on `host` (None when the job has none)."""
    job = plan.inventory.jobs[plan.job]
    return plan.inventory.host_path(host, job.data if job.data is not None else plan.inventory.paths.data)


def check_data(plan, limit: int = remote.DEFAULT_LIMIT) -> None:
    """Probe the data path on every host that runs ranks; refuse when it is missing on any host."""
    inv = plan.inventory
    hosts = [inv.host(name) for name, ranks in plan.placement.items() if ranks]
    hosts = [h for h in hosts if data_path(plan, h)]
    ts = remote.targets(hosts)

    def probe(t):
        t.connect()
        done = t.run_template("data_probe.sh.j2", timeout=PROBE_TIMEOUT, check=False, data=data_path(plan, t.host))
        return remote.parse_kv(done.stdout).get("data")

    try:
        results = remote.fan_out(ts, probe, limit=limit, timeout=PROBE_TIMEOUT)
    finally:
        remote.close_all(ts)
    missing = {r.host: data_path(plan, inv.host(r.host)) for r in results if r.ok and r.value == "missing"}
    if missing:
        key = f"jobs.{plan.job}.data" if inv.jobs[plan.job].data is not None else "paths.data"
        raise UserError(f"{plan.job} not started: {_where(missing)}; set {key} in {inv.source_path} to a "
                        "directory present there, or copy the data there")


def _where(missing: dict, shown: int = 3) -> str:
    """`data path /d not found on h1, h2` (one path) or `data path not found: h1 /w1/d, h2 /w2/d`."""
    names = list(missing)
    more = f" (and {len(names) - shown} more host(s))" if len(names) > shown else ""
    if len(set(missing.values())) == 1:
        return f"data path {missing[names[0]]} not found on {', '.join(names[:shown])}{more}"
    return f"data path not found: {', '.join(f'{h} {missing[h]}' for h in names[:shown])}{more}"
