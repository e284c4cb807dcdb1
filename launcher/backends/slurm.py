"""The Slurm backend: one job of a run as one sbatch script, submitted from the submit host.

Pure (no I/O): inventory x job x run -> the batch script text (templates/sbatch.j2) and its job
step line (templates/srun.j2). The script runs on the first node of the allocation; srun starts one
torchrun per node, each node's rendezvous taken from the allocation (SLURM_JOB_NODELIST, SLURM_NODEID,
SLURM_JOB_NUM_NODES, SLURM_JOB_ID).

Files in the run directory on the submit host (a shared filesystem, seen by every node):
    <job>.sbatch          the batch script (submitted from the run directory)
    <job>.slurm.log       the batch script's output (#SBATCH --output, appended on resubmission)
    <job>.node<N>.log     torchrun's output on node N of the allocation (srun --output=<job>.node%n.log)
    <job>.rank<N>.log     the output of global rank N
    <job>.exit            the batch script's exit status
    <job>.jobid           the Slurm job id of the last submission
    <job>.secrets         secret env (mode 0600), sourced and deleted by the batch script
"""
from launcher.backends.base import HostLaunch, JobContext, Launch
from launcher.paths import HostPath
from launcher.render import render_template


def files(run_dir: HostPath, job: str) -> dict:
    def f(name):
        return HostPath(f"{run_dir}/{name}")
    return dict(run_dir=run_dir, script_path=f(f"{job}.sbatch"), log_path=f(f"{job}.slurm.log"),
                pid_path=f(f"{job}.jobid"), exit_path=f(f"{job}.exit"), secrets_path=f(f"{job}.secrets"))


def job_name(job: str, run_id: str) -> str:
    return f"mae-{job}-{run_id}"


class SlurmBackend:
    name = "slurm"

    def launch(self, ctx: JobContext) -> Launch:
        inv, host, job = ctx.inventory, ctx.controller, ctx.job_name
        nodes, per_node = inv.slurm.nodes, ctx.job.nproc_per_node
        placement = {f"node{i}": list(range(i * per_node, (i + 1) * per_node)) for i in range(nodes)}
        env = dict(ctx.env)
        if inv.network.interface:
            env.setdefault("GLOO_SOCKET_IFNAME", inv.network.interface)
            env.setdefault("NCCL_SOCKET_IFNAME", inv.network.interface)
        f = files(ctx.run_dir(host), job)
        command = render_template("srun.j2", node_log=HostPath(f"{f['run_dir']}/{job}.node%n.log"),
                                  cpus_per_task=inv.slurm.cpus_per_task).rstrip("\n")
        script = self.batch_script(ctx, env, f, command)
        ranks = list(range(nodes * per_node))
        rank_logs = {r: ctx.file(host, f"{job}.rank{r}.log") for r in ranks}
        return Launch(self.name, nodes * per_node, placement,
                      [HostLaunch(host, 0, ranks, command, env, rank_logs, script=script, files=f)])

    @staticmethod
    def batch_script(ctx: JobContext, env: dict, f: dict, command: str) -> str:
        inv, host, job, slurm = ctx.inventory, ctx.controller, ctx.job_name, ctx.inventory.slurm
        output = HostPath(f"{inv.host_path(host, inv.paths.output)}/{ctx.run_id}/{job}")
        return render_template(
            "sbatch.j2", job_name=job_name(job, ctx.run_id), nodes=slurm.nodes, partition=slurm.partition,
            account=slurm.account, qos=slurm.qos, time=slurm.time, gpus_per_node=slurm.gpus_per_node,
            cpus_per_task=slurm.cpus_per_task, constraint=slurm.constraint, gres=slurm.gres,
            exclusive=slurm.exclusive, mem=slurm.mem,
            extra_sbatch_args=list(slurm.extra_sbatch_args), slurm_log=f"{job}.slurm.log",
            run_id=ctx.run_id, job=job, workdir=host.workdir,
            sdk_enable=[inv.host_path(host, s) for s in inv.paths.sdk_enable],
            venv=inv.host_path(host, inv.paths.venv), env=env,
            secret_names=[n for n in ctx.env_names if n not in ctx.env], output_dir=output,
            nproc_per_node=ctx.job.nproc_per_node, rendezvous=inv.network.rendezvous,
            master_port=inv.network.master_port, launcher_args=list(ctx.job.launcher_args),
            rank_log_prefix=ctx.file(host, job), program=ctx.program(host), command=command,
            run_dir=f["run_dir"], exit_path=f["exit_path"], secrets_path=f["secrets_path"])
