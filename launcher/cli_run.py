"""`mae-launch pretrain|finetune|validate|pipeline`: start a job on every host, follow it, fail fast."""
from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape

from launcher import artifacts, options, remote, runs, supervise
from launcher.cli import main
from launcher.errors import UserError
from launcher.plan import check_run_id, new_run_id, plan_job

PIPELINE = ("pretrain", "finetune", "validate")


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _start_and_follow(console, inv, run, plan, detach: bool, poll: float) -> int:
    console.print(f"[bold]run {run.id}[/]: {plan.job} on {len(plan.hosts)} host(s) "
                  f"({plan.mode}, {plan.world_size} process(es)), output {escape(str(plan.output_dir))}")
    results = runs.start_job(plan, run)
    if not all(r.ok for r in results):
        console.print(remote.summary_table(f"start {plan.job}", results, lambda r: f"pgid {r.value}"))
        console.print(remote.failure_message('starting ' + plan.job, results), markup=False, style="red")
        stopped = runs.stop_run(run)
        console.print(remote.summary_table("stop", stopped, lambda r: "nothing left"))
        return 1
    if detach:
        pgids = ", ".join(f"{r.host}={r.value}" for r in results)
        console.print(f"started (process groups {pgids}); follow with: mae-launch logs {run.id} --follow")
        return 0
    outcome = supervise.follow(run, plan.job, console, poll=poll)
    if outcome.rc == 0:
        console.print(f"[green]{plan.job} finished on every host[/] (run {run.id})")
    else:
        supervise.report(console, outcome, run.id)
    return outcome.rc


def _common(func):
    for deco in reversed([
        options.inventory_option,
        click.option("--run-id", metavar="ID", default=None, help="Run id (default: a new one)."),
        click.option("--detach", is_flag=True, help="Start and return at once; follow later with `logs --follow`."),
        click.option("--poll", type=float, default=0.5, show_default=True, metavar="S",
                     help="Seconds between looks at the hosts while following."),
    ]):
        func = deco(func)
    return func


def _run_one(job: str, inventory_path, run_id, detach, poll, resume=None, from_run=None, checkpoint=None):
    console = _console()
    inv = options.load(inventory_path)
    if resume is not None:
        run = runs.Run.load(check_run_id(resume))
        if run.data.get("inventory") and str(inv.source_path) != run.data["inventory"]:
            console.print(f"[yellow]note: run {run.id} was started with {escape(run.data['inventory'])}[/]")
        plan = plan_job(inv, job, run.id, consume=checkpoint, consume_run=from_run, resume=True)
        run.data.setdefault("resumed", []).append(runs._now())
        run.save()
    else:
        run_id = check_run_id(run_id) if run_id else new_run_id()
        plan = plan_job(inv, job, run_id, consume=checkpoint, consume_run=from_run)
        run = None
    if plan.consumed_checkpoint is not None:  # before any record: a missing checkpoint is bad input
        artifacts.ensure_checkpoint(plan, plan.consumes or "the consumed job")
    if run is None:
        run = runs.Run.create(run_id, inv, sys.argv)
    if resume is not None and job != "validate":
        artifacts.ensure_resume(plan)
    return _start_and_follow(console, inv, run, plan, detach, poll)


def _job_command(job: str, consumes: bool):
    @_common
    @click.option("--resume", metavar="RUN", default=None,
                  help="Continue run RUN from the last checkpoint in its output directory.")
    def command(inventory_path, run_id, detach, poll, resume, **kw):
        sys.exit(_run_one(job, inventory_path, run_id, detach, poll, resume,
                          kw.get("from_run"), kw.get("checkpoint")))

    if consumes:
        command = click.option("--from", "from_run", metavar="RUN", default=None,
                               help="Consume the checkpoint of this earlier run.")(command)
        command = click.option("--checkpoint", metavar="PATH", default=None,
                               help="Consume this checkpoint (a path on the hosts).")(command)
    command.__doc__ = {
        "pretrain": "Run MAE pretraining on every host of the inventory and follow it.\n\n"
                    "Example: mae-launch pretrain -i inventories/gpu-cluster.yml --detach",
        "finetune": "Finetune a pretrained checkpoint on every host and follow it.\n\n"
                    "Example: mae-launch finetune --from 20260101-120000-ab12",
        "validate": "Validate a finetuned checkpoint and print its top-1 accuracy.\n\n"
                    "Example: mae-launch validate --checkpoint output/RUN/finetune/checkpoint.pth",
    }[job]
    return main.command(name=job)(command)


for _job in PIPELINE:
    _job_command(_job, consumes=_job != "pretrain")


@main.command()
@_common
def pipeline(inventory_path, run_id, detach, poll):
    """Run pretrain -> finetune -> validate as one run; each stage starts only when the one before
    succeeded and left its checkpoint, and gets that checkpoint. Prints the final top-1.

    Example: mae-launch pipeline            (this machine, digits)
    """
    if detach:
        raise UserError("pipeline cannot --detach: each stage waits for the one before; run it in tmux/nohup")
    console = _console()
    inv = options.load(inventory_path)
    run_id = check_run_id(run_id) if run_id else new_run_id()
    stages = [j for j in PIPELINE if j in inv.jobs]
    if not stages:
        raise UserError(f"{inv.source_path}: no jobs to run (define jobs.pretrain/finetune/validate)")
    plans = [plan_job(inv, j, run_id) for j in stages]  # plan everything before anything runs
    run = runs.Run.create(run_id, inv, sys.argv)
    for plan in plans:
        if plan.consumed_checkpoint is not None:
            artifacts.ensure_checkpoint(plan, plan.consumes or "the previous stage")
        rc = _start_and_follow(console, inv, run, plan, False, poll)
        if rc != 0:
            console.print(f"[red]pipeline stopped at {plan.job}[/] (run {run.id})")
            sys.exit(rc)
    last = plans[-1]
    if last.job == "validate":
        result = artifacts.validation_result(last)
        if result is None:
            console.print(f"[red]validate wrote no {escape(str(last.output_dir))}/validation.json[/]")
            sys.exit(1)
        run.data["validation"] = result
        run.save()
        console.print(f"[bold green]final validation top-1: {float(result['top1']):.2f}%[/] "
                      f"(top-5 {float(result.get('top5', 0)):.2f}%, {result.get('n', '?')} images, run {run.id})")
