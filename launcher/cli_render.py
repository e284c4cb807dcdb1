"""`mae-launch render JOB`: the dry run — print what would run on each host, run nothing."""
import click

from launcher import options
from launcher.plan import check_run_id, new_run_id, plan_job
from launcher.report import ranks_text


@click.command()
@click.argument("job", metavar="JOB")
@options.inventory_option
@click.option("--run-id", metavar="ID", default=None,
              help="Run id to render with (default: a new one, YYYYmmdd-HHMMSS-xxxx).")
@click.option("--commands", "commands_only", is_flag=True,
              help="Print only the launch commands, not the whole job scripts.")
@options.adjust_options
def render(job, inventory_path, run_id, commands_only, hosts, excludes, envs, program_args):
    """Print the job script and launch command of JOB (pretrain, finetune or validate) for every host.

    Nothing is run and no host is contacted. Secret env values never appear: the scripts read them
    from a file the launcher writes at start. Example: mae-launch render pretrain -i pod64
    """
    inv = options.load_adjusted(inventory_path, hosts, excludes, envs, program_args, jobs=(job,), connecting=False)
    run_id = check_run_id(run_id) if run_id is not None else new_run_id()
    plan = plan_job(inv, job, run_id)
    click.echo(f"# job {plan.job} (config {plan.config}) of inventory {inv.name} ({inv.source_path}), run {plan.run_id}")
    click.echo(f"# mode {plan.mode}, {plan.world_size} process(es): "
               + "; ".join(f"{h} ranks {ranks_text(r)}" for h, r in plan.placement.items()))
    click.echo(f"# writes {plan.checkpoint}" + (f"; starts from {plan.consumed_checkpoint}" if plan.consumed_checkpoint else ""))
    for hp in plan.hosts:
        if plan.mode == "slurm":
            where = f"submit host, {hp.host.connection}; sbatch script"
        else:
            where = ("controller, " if hp.host is inv.controller else "") + f"node {hp.node_rank}, {hp.host.connection}"
        click.echo(f"\n==> {hp.host.name} ({where}): {hp.script_path}")
        click.echo(hp.command if commands_only else hp.script.rstrip("\n"))
