"""Run a job, a pipeline or a resume: plan -> record -> start -> supervise.

Everything here happens in that order: the whole job (or every stage of a pipeline) is planned before
anything runs, a missing consumed checkpoint is bad input caught before any record is written, a
mistyped program argument or a data path missing on a host (launcher/prelaunch.py) refuses a new run
before anything starts and leaves no record, the run record is written before a host is touched, and
the record's state follows what the hosts did.
"""
from __future__ import annotations

import contextlib

from typing import Optional

from rich.console import Console
from rich.markup import escape

from launcher import (artifacts, hostops, prelaunch, remote, rendezvous, report, slurm_orchestrate, supervise,
                      workdirs)
from launcher.errors import UserError
from launcher.inventory import PACKAGE_ROOT
from launcher.jobs import JOB_KINDS, JOB_NAMES
from launcher.plan import check_run_id, new_run_id, plan_job
from launcher.runs import RunRecord, RunStore


def _scrub(text: str, secrets: list) -> str:
    for s in secrets:
        text = text.replace(s, "***")
    return text


def _record_job(store: RunStore, run: RunRecord, plan):
    job = run.add_job(plan)
    secrets = plan.inventory.secret_values()
    for hp in plan.hosts:
        store.save_script(run.id, f"{plan.job}.{hp.host.name}.sh", _scrub(hp.script, secrets))
    store.save(run)
    return job


def _start(con: Console, store: RunStore, run: RunRecord, plan, job, ts: dict) -> bool:
    """Start the job everywhere; on a partial start, stop what started. True when all started."""
    results = hostops.start_job(plan, ts, token=run.token)
    job.started_on({r.host: r.value for r in results if r.ok})
    store.save(run)
    if all(r.ok for r in results):
        return True
    report.print_results(con, f"start {plan.job}", f"starting {plan.job}", results, lambda r: f"pgid {r.value}")
    stopped = hostops.stop_run(run, ts)
    con.print(report.summary_table("stop", stopped, lambda r: "nothing left"))
    return False


def _refuse_foreign(plan, ts: dict) -> None:
    """Never write into a directory that is not mae-launch's (launcher/workdirs.py)."""
    refused = workdirs.foreign(list(ts.values()), PACKAGE_ROOT)
    if refused:
        more = f" (and {len(refused) - 1} more host(s))" if len(refused) > 1 else ""
        raise UserError(f"{plan.job} refused, nothing was started: {refused[0]}{more}; name a new directory "
                        f"as its workdir, or deploy there first (mae-launch deploy -i {plan.inventory.source_path})")


def _prelaunch(store: RunStore, run: RunRecord, plans: list) -> None:
    """Mistyped program arguments or a data path missing on a host (launcher/prelaunch.py) refuse the
    launch of a new run before anything starts, and leave no record behind."""
    try:
        for plan in plans:
            prelaunch.check(plan)
    except UserError:
        store.discard(run.id)
        raise


def _take_lock(con: Console, plan, run: RunRecord, ts: dict) -> None:
    """One launch per rendezvous port / V-IPU partition: refuse while another live run holds it."""
    controller = plan.hosts[0].host.name
    try:
        kv = hostops.lock(plan, run, ts)
    except remote.RemoteError as e:
        raise UserError(f"{controller}: cannot take the launch lock: {e.message}") from None
    what = (f"rendezvous port {plan.inventory.network.master_port}" if plan.mode == "torchrun"
            else f"V-IPU partition {plan.inventory.jobs[plan.job].partition}")
    if kv.get("took_over"):
        con.print(f"note: took over the launch lock of {what} on {controller} from run {kv['took_over']}, "
                  "which has no live process any more", markup=False, highlight=False)
    if kv.get("acquired") != "1":
        raise UserError(f"{controller}: {what} is in use by run {kv.get('held', '?')} (started {kv.get('since', '?')}); "
                        f"stop it first (mae-launch stop {kv.get('held', 'RUN')}) or choose another "
                        + ("network.master_port" if plan.mode == "torchrun" else "partition"))


def start_and_follow(con: Console, store: RunStore, run: RunRecord, plan, detach: bool = False,
                     poll: float = 0.5) -> int:
    """Record, start and (unless `detach`) follow one planned job; the exit status."""
    if plan.mode == "slurm":  # submitted to Slurm from the submit host, followed there
        return slurm_orchestrate.submit_and_follow(con, store, run, [plan], detach, max(poll, 1.0))
    con.print(f"[bold]run {run.id}[/]: {plan.job} on {len(plan.hosts)} host(s) "
              f"({plan.mode}, {plan.world_size} process(es)), output {escape(str(plan.output_dir))}")
    ts = {hp.host.name: remote.target(hp.host) for hp in plan.hosts}
    try:
        try:
            _refuse_foreign(plan, ts)
            _take_lock(con, plan, run, ts)
        except UserError:
            if not run.jobs:  # a refused first launch leaves no record behind
                store.discard(run.id)
            raise
        job = _record_job(store, run, plan)
        job.lock = hostops.lock_name(plan)  # given back when it ends: here, or by `status` if detached
        ts.update(hostops.targets_for(run, [n for n in run.host_names() if n not in ts]))
        if not _start(con, store, run, plan, job, ts):
            return 1
        if detach:
            pgids = ", ".join(f"{n}={h.pgid}" for n, h in job.hosts.items())
            con.print(f"started (process groups {pgids}); follow with: mae-launch logs {run.id} --follow")
            return 0
        outcome = supervise.follow(run, job, ts, con, store, poll=poll, rendezvous_timeout=(
            plan.inventory.network.rendezvous_timeout if plan.mode == "torchrun" and len(plan.hosts) > 1 else None))
        with contextlib.suppress(remote.RemoteError):
            hostops.release(run, job, ts)
    finally:
        remote.close_all(ts.values())
    if outcome.rc == 0:
        con.print(f"[green]{plan.job} finished on every host[/] (run {run.id})")
    else:
        report.print_failure(con, outcome, run.id)
    return outcome.rc


def _master_addr(inv) -> Optional[str]:
    """The rendezvous address when the controller must be asked for it (network.interface); else the
    planner's own (network.master_addr, the controller's resolved HostName)."""
    if inv.is_slurm or inv.launcher != "torchrun" or not inv.network.interface or inv.network.master_addr:
        return None
    return rendezvous.address(inv)


def run_job(con: Console, inv, job_name: str, *, run_id: Optional[str] = None, detach: bool = False,
            poll: float = 0.5, resume: Optional[str] = None, from_run: Optional[str] = None,
            checkpoint: Optional[str] = None, argv: tuple = (), store: Optional[RunStore] = None) -> int:
    """Plan and run one job of `inv` (a new run, or `resume`: continue that run); the exit status."""
    store = store or RunStore()
    run = None
    if resume is not None:
        run = store.load(check_run_id(resume))
        if run.inventory and str(inv.source_path.resolve()) != run.inventory:
            con.print(f"[yellow]note: run {run.id} was started with {escape(run.inventory)}[/]")
        run_id = run.id
    run_id = check_run_id(run_id) if run_id else new_run_id()
    plan = plan_job(inv, job_name, run_id, consume=checkpoint, consume_run=from_run, resume=resume is not None,
                    master_addr=_master_addr(inv))
    if plan.consumed_checkpoint is not None:  # before any record: a missing checkpoint is bad input
        artifacts.ensure_checkpoint(plan, plan.consumes or "the consumed job")
    if run is None:
        run = store.create(RunRecord.new(run_id, inv, list(argv)), inv.snapshot())
        _prelaunch(store, run, [plan])
    else:
        prelaunch.check(plan)  # before the record changes: mistyped arguments, a missing data path
        run.resume()
        store.save(run)
        if JOB_KINDS[job_name].resumable:
            artifacts.ensure_resume(plan)
    return start_and_follow(con, store, run, plan, detach, poll)


def run_pipeline(con: Console, inv, *, run_id: Optional[str] = None, poll: float = 0.5,
                 argv: tuple = (), store: Optional[RunStore] = None, detach: bool = False) -> int:
    """pretrain -> finetune -> validate as one run; each stage starts only when the one before
    succeeded and left its checkpoint. Prints the final top-1; the exit status.
    Slurm inventories: every stage is submitted at once, chained by Slurm (afterok); `detach`
    returns after submitting."""
    if detach and not inv.is_slurm:
        raise UserError("pipeline cannot --detach: each stage waits for the one before; run it in tmux/nohup"
                        " (Slurm inventories can: Slurm chains the stages)")
    store = store or RunStore()
    run_id = check_run_id(run_id) if run_id else new_run_id()
    stages = [j for j in JOB_NAMES if j in inv.jobs]
    if not stages:
        raise UserError(f"{inv.source_path}: no jobs to run (define jobs.pretrain/finetune/validate)")
    master_addr = _master_addr(inv)
    plans = [plan_job(inv, j, run_id, master_addr=master_addr) for j in stages]  # plan everything before anything runs
    run = store.create(RunRecord.new(run_id, inv, list(argv)), inv.snapshot())
    _prelaunch(store, run, plans)  # every stage's arguments and data before the first one starts
    if inv.is_slurm:
        rc = slurm_orchestrate.submit_and_follow(con, store, run, plans, detach, max(poll, 1.0))
        return rc if rc != 0 or detach else _final_validation(con, store, run, plans[-1])
    for plan in plans:
        if plan.consumed_checkpoint is not None:
            artifacts.ensure_checkpoint(plan, plan.consumes or "the previous stage")
        rc = start_and_follow(con, store, run, plan, False, poll)
        if rc != 0:
            con.print(f"[red]pipeline stopped at {plan.job}[/] (run {run.id})")
            return rc
    return _final_validation(con, store, run, plans[-1])


def _final_validation(con: Console, store: RunStore, run: RunRecord, last) -> int:
    if last.job != "validate":
        return 0
    result = artifacts.validation_result(last)
    if result is None:
        con.print(f"[red]validate wrote no {escape(str(last.output_dir))}/validation.json[/]")
        return 1
    run.record_validation(result)
    store.save(run)
    con.print(f"[bold green]final validation top-1: {float(result['top1']):.2f}%[/] "
              f"(top-5 {float(result.get('top5', 0)):.2f}%, {result.get('n', '?')} images, run {run.id})")
    return 0
