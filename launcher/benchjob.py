"""Run a benchmark variant as a job through an inventory (`mae-launch bench --inventory INV`).

The variant's command must run ``python3 -m mae.<job> ARGS``: the job of that kind is planned on the
inventory's hosts (its backend: torchrun, poprun or one process) with ``--config`` and ARGS from the
command (the run's own output directory replaces any ``--output_dir``, and the entry's ``env`` is
added to the job's), run and followed like `mae-launch <job>`, then rank 0's log is read back from the
controller and the spec's regexps are applied to it.
"""
from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

from launcher import artifacts, benchrun, orchestrate, remote
from launcher.errors import UserError
from launcher.jobs import JOB_KINDS
from launcher.plan import new_run_id, plan_job
from launcher.schema import EnvValue


def job_of(argv: list[str]) -> tuple[str, str, list[str]]:
    """(job, config, args) of `... -m mae.<job> [--config NAME] ARGS`; UserError when it is not one."""
    entries = {k.entry: k.name for k in JOB_KINDS.values()}
    for k in range(len(argv) - 1):
        if argv[k] == "-m" and argv[k + 1] in entries:
            job, rest = entries[argv[k + 1]], argv[k + 2:]
            break
    else:
        raise UserError("the command does not run python3 -m mae.pretrain|finetune|validate; "
                        "run this benchmark without --inventory")
    config, args, skip = None, [], False
    for k, word in enumerate(rest):
        if skip:
            skip = False
        elif word in ("--config", "--output_dir") and k + 1 < len(rest):
            config = rest[k + 1] if word == "--config" else config
            skip = True
        elif word.startswith(("--config=", "--output_dir=")):
            config = word.split("=", 1)[1] if word.startswith("--config=") else config
        else:
            args.append(word)
    return job, config, args


def inventory_for(inv, job: str, config: str | None, args: list[str], env: dict):
    """`inv` with its `job` replaced by the variant's config, args and env."""
    base = inv.jobs.get(job)
    if base is None:
        base = next(iter(inv.jobs.values()))
        base = dataclasses.replace(base, name=job, consumes=None, args=(), env={}, data=None)
    if config is None:
        config = base.config
    merged_env = {**base.env, **{k: EnvValue(value=v) for k, v in env.items()}}
    new = dataclasses.replace(base, config=config, args=tuple(args), env=merged_env, consumes=None)
    return dataclasses.replace(inv, jobs={**inv.jobs, job: new})


def _rank0_log(plan) -> str:
    hp = plan.hosts[0]
    path = hp.rank_logs.get(0, hp.log_path) if hp.rank_logs else hp.log_path
    t = remote.target(hp.host)
    try:
        return artifacts.read_text(t, path) or ""
    finally:
        t.close()


def run_variant(con, inv, bench, variant, log_dir: Path) -> benchrun.VariantResult:
    env = benchrun.variant_env(bench)
    argv = benchrun.expand(variant.cmd, env)
    start, t0 = datetime.now(timezone.utc), time.perf_counter()
    try:
        job, config, args = job_of(argv)
        inv2 = inventory_for(inv, job, config, args, bench.env)
        run_id = new_run_id()
        plan = plan_job(inv2, job, run_id)
        code = orchestrate.run_job(con, inv2, job, run_id=run_id, argv=("mae-launch", "bench", variant.name))
        text, error = _rank0_log(plan), ""
    except UserError as exc:
        code, text, error, run_id = 2, "", str(exc), None
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "stdout").write_text(text)
    (log_dir / "stderr").write_text(error + "\n" if error else "")
    result = benchrun.result_of(bench, variant, argv, text, error, code, start, time.perf_counter() - t0, log_dir)
    result.extra = {"run_id": run_id, "inventory": str(inv.source_path)}
    return result
