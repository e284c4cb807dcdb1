"""`mae-launch pretrain|finetune|validate|pipeline`: start a job on every host, follow it, fail fast."""
import sys

import click

from launcher import options, orchestrate, report
from launcher.jobs import JOB_KINDS

HELP = {
    "pretrain": "Run MAE pretraining on every host of the inventory and follow it.\n\n"
                "Example: mae-launch pretrain -i inventories/gpu-cluster.yml --detach",
    "finetune": "Finetune a pretrained checkpoint on every host and follow it.\n\n"
                "Example: mae-launch finetune --from 20260101-120000-ab12",
    "validate": "Validate a finetuned checkpoint and print its top-1 accuracy.\n\n"
                "Example: mae-launch validate --checkpoint output/RUN/finetune/checkpoint.pth",
}


def _common(func):
    for deco in reversed([
        options.inventory_option,
        click.option("--run-id", metavar="ID", default=None, help="Run id (default: a new one)."),
        click.option("--detach", is_flag=True, help="Start and return at once; follow later with `logs --follow`."),
        click.option("--poll", type=options.Seconds(0.05, 60), default=0.5, show_default=True, metavar="S",
                     help="Seconds between looks at the hosts while following."),
        options.adjust_options,
    ]):
        func = deco(func)
    return func


def _job_command(job: str) -> click.Command:
    def command(inventory_path, run_id, detach, poll, hosts, excludes, envs, program_args, resume,
                other_inventory, from_run=None, checkpoint=None):
        con = report.console()
        if resume is not None:
            explicit = not options.inventory_is_default()
            inv = options.adjust(options.load_for_resume(resume, inventory_path, explicit, other_inventory),
                                 hosts, excludes, envs, program_args, (job,))
        else:
            if note := options.default_inventory_note():
                con.print(note, markup=False, highlight=False)
            inv = options.load_adjusted(inventory_path, hosts, excludes, envs, program_args, jobs=(job,))
        sys.exit(orchestrate.run_job(con, inv, job, run_id=run_id, detach=detach, poll=poll,
                                     resume=resume, from_run=from_run, checkpoint=checkpoint, argv=tuple(sys.argv)))

    command.__doc__ = HELP[job]
    command = click.option("--resume", metavar="RUN", default=None,
                           help="Continue run RUN from the last checkpoint in its output directory, with "
                                "the inventory it was started with.")(command)
    command = click.option("--other-inventory", is_flag=True,
                           help="With --resume: use --inventory even though the run was started with "
                                "another.")(command)
    if JOB_KINDS[job].consume_flag is not None:
        command = click.option("--from", "from_run", metavar="RUN", default=None,
                               help="Consume the checkpoint of this earlier run.")(command)
        command = click.option("--checkpoint", metavar="PATH", default=None,
                               help="Consume this checkpoint (a path on the hosts).")(command)
    return click.command(name=job)(_common(command))


JOB_COMMANDS = {job: _job_command(job) for job in JOB_KINDS}


@click.command()
@_common
def pipeline(inventory_path, run_id, detach, poll, hosts, excludes, envs, program_args):
    """Run pretrain -> finetune -> validate as one run; each stage starts only when the one before
    succeeded and left its checkpoint, and gets that checkpoint. Prints the final top-1.

    With a Slurm inventory every stage is submitted at once, chained by Slurm (afterok), and
    --detach returns after submitting.

    Example: mae-launch pipeline            (this machine, digits)
    """
    con = report.console()
    if note := options.default_inventory_note():
        con.print(note, markup=False, highlight=False)
    inv = options.load_adjusted(inventory_path, hosts, excludes, envs, program_args, jobs=JOB_KINDS)
    sys.exit(orchestrate.run_pipeline(con, inv, run_id=run_id, poll=poll, argv=tuple(sys.argv),
                                      detach=detach))
