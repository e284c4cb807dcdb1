"""Plan a job: inventory x job x run id -> what runs where. Pure: no I/O, no clock, no network.

Files of a run on each host (all under `<workdir>/runs/<run_id>/`, named per job and host so one
run directory can hold pretrain, finetune and validate, even on a filesystem shared by the hosts):

    <job>.<host>.sh       the job script (HostPlan.script_path; HostPlan.script is its text)
    <job>.<host>.log      the script's and the launcher's output (torchrun agent / poprun / python)
    <job>.rank<N>.log     the output of global rank N (torchrun: every rank; single process: rank 0)
    <job>.<host>.pid      the script's pid (= its process-group id when started with setsid)
    <job>.<host>.exit     the exit status, written atomically when the script ends (any reason but SIGKILL)
    <job>.<host>.secrets  secret env (mode 0600), written by the launcher only when the job has secrets;
                          the script sources and deletes it before the job starts

The job's outputs go to `<paths.output>/<run_id>/<job>/` (JobPlan.output_dir, on the controller, where
global rank 0 runs); its checkpoint is `<output_dir>/checkpoint.pth` (JobPlan.checkpoint). A consuming
job gets the consumed job's checkpoint: `--finetune CKPT` for finetune, `--resume CKPT` for validate.

How the job is launched (ranks, the launch command of each host) is the backend's business
(launcher/backends/: torchrun, poprun, single); the job script around it is rendered here, the same
for every backend. Facts about job kinds come from launcher/jobs.py.
"""

from dataclasses import dataclass, field
from typing import Optional

from launcher import backends, sshconf
from launcher.backends.base import JobContext
from launcher.errors import PlanError
from launcher.inventory import Host, Inventory
from launcher.jobs import JOB_KINDS
from launcher.paths import HostPath
from launcher.render import render_template
from launcher.runs import RUN_ID, check_run_id  # noqa: F401 (part of this module's API)

RUNS_DIR = "runs"  # relative to the host's workdir; locally, run records live in <repo>/runs too


@dataclass(frozen=True)
class HostPlan:
    host: Host
    node_rank: int                 # torchrun node rank / index among the job's hosts (controller = 0)
    ranks: list                    # global ranks (poprun: instances) this host's script starts
    script: str                    # rendered job script (no secret values in it)
    command: str                   # the rendered launch command inside the script
    env: dict                      # variables the script exports (no secrets)
    secret_names: list             # secret variables the script expects from `secrets_path`
    run_dir: HostPath
    script_path: HostPath
    log_path: HostPath
    rank_logs: dict                # global rank -> log path; {} for poprun (all in log_path)
    pid_path: HostPath
    exit_path: HostPath
    secrets_path: HostPath
    output_dir: HostPath


@dataclass(frozen=True)
class JobPlan:
    inventory: Inventory = field(repr=False)
    job: str
    run_id: str
    mode: str                      # the backend: 'torchrun' | 'poprun' | 'single'
    config: str
    world_size: int                # processes: torchrun ranks / poprun instances / 1
    placement: dict                # host name -> global ranks placed there (all hosts of the job)
    hosts: list                    # HostPlan for every host where a script is started
    output_dir: HostPath           # on the controller
    checkpoint: HostPath           # output_dir/checkpoint.pth: what this job produces
    consumes: Optional[str]        # consumed job name
    consumed_checkpoint: Optional[HostPath]
    program: list                  # argv of the training program (python3 -m mae.<job> ...)

    @property
    def controller(self) -> HostPlan:
        return self.hosts[0]

    def secrets(self) -> dict:
        """Secret variables (name -> value) for the `<job>.<host>.secrets` file; never log them."""
        job = self.inventory.jobs[self.job]
        merged = {**self.inventory.env, **job.env}
        return {k: v.value for k, v in merged.items() if v.secret}

    def secrets_file_text(self) -> str:
        """Content of `HostPlan.secrets_path` (shell assignments, quoted). Empty when no secrets."""
        secrets = self.secrets()
        return render_template("secrets.env.j2", secrets=secrets) if secrets else ""


def _output_dir(inv: Inventory, host: Host, run_id: str, job: str) -> HostPath:
    return HostPath(f"{inv.host_path(host, inv.paths.output)}/{run_id}/{job}")


def _consumed(inv: Inventory, job, controller: Host, run_id: str, consume: Optional[str],
              consume_run: Optional[str]) -> Optional[HostPath]:
    """The checkpoint the job starts from: explicit, else the consumed job's of this (or that) run."""
    flag = JOB_KINDS[job.name].consume_flag
    if consume is not None:
        return HostPath(consume) if consume.startswith(("/", "~/")) else inv.host_path(controller, consume)
    if job.consumes is not None:
        return HostPath(f"{_output_dir(inv, controller, consume_run or run_id, job.consumes)}/checkpoint.pth")
    if flag is not None and flag not in job.args:
        raise PlanError(f"{inv.source_path}: job {job.name} needs a checkpoint: set `consumes:` or pass {flag} CKPT in its args")
    return None


def _program(inv: Inventory, job, run_id: str, consumed, resume: bool):
    """program(host, extra=()) -> argv of `python3 -m mae.<job> ...` as seen on that host."""
    kind = JOB_KINDS[job.name]

    def program(host: Host, extra=()) -> list:
        argv = ["python3", "-m", kind.entry, "--config", job.config]
        data = inv.host_path(host, job.data if job.data is not None else inv.paths.data)
        if data is not None:
            argv += ["--data_path", data]
        argv += list(extra)
        argv += ["--output_dir", _output_dir(inv, host, run_id, job.name)]
        if consumed is not None:
            argv += [kind.consume_flag, consumed]
        if resume and kind.resumable:
            argv += ["--resume"]
        return argv + list(job.args)
    return program


def _host_plan(ctx: JobContext, launched, secret_names: list) -> HostPlan:
    inv, host, job, run_id = ctx.inventory, launched.host, ctx.job_name, ctx.run_id
    files = launched.files or dict(
        run_dir=ctx.run_dir(host), script_path=ctx.file(host, f"{job}.{host.name}.sh"),
        log_path=ctx.file(host, f"{job}.{host.name}.log"), pid_path=ctx.file(host, f"{job}.{host.name}.pid"),
        exit_path=ctx.file(host, f"{job}.{host.name}.exit"),
        secrets_path=ctx.file(host, f"{job}.{host.name}.secrets"))
    output_dir = _output_dir(inv, host, run_id, job)
    command = launched.command.rstrip("\n")
    script = launched.script or render_template(
        "job.sh.j2", run_id=run_id, job=job, host=host.name, workdir=host.workdir,
        sdk_enable=[inv.host_path(host, s) for s in inv.paths.sdk_enable],
        venv=inv.host_path(host, inv.paths.venv), env=launched.env, secret_names=secret_names,
        output_dir=output_dir, command=command, command_log=launched.command_log, **files)
    return HostPlan(host=host, node_rank=launched.node_rank, ranks=launched.ranks, script=script,
                    command=command, env=launched.env, secret_names=secret_names,
                    rank_logs=launched.rank_logs, output_dir=output_dir, **files)


def host_address(host: Host) -> str:
    """The address other hosts reach `host` at: its HostName as OpenSSH resolves it (ssh -G reads
    local files only), never an alias only this machine's ssh config knows."""
    return sshconf.resolve(host).address


def plan_job(inv: Inventory, job_name: str, run_id: str, consume: Optional[str] = None,
             consume_run: Optional[str] = None, resume: bool = False, master_addr: Optional[str] = None) -> JobPlan:
    """Plan `job_name` of `inv` as run `run_id`.

    master_addr: the rendezvous address (launcher/rendezvous.py asks the controller for its address on
      `network.interface`); default `network.master_addr`, else the controller's resolved HostName.
    consume: an explicit checkpoint path for finetune (--finetune) / validate (--resume); by default
      the consumed job's `<output>/<consume_run or run_id>/<consumed job>/checkpoint.pth`.
    resume: pretrain/finetune continue from the last checkpoint of this run's output dir (--resume).
    """
    job = inv.job(job_name)
    check_run_id(run_id)
    if consume_run is not None:
        check_run_id(consume_run)
    hosts = [inv.controller] + [h for h in inv.hosts if h is not inv.controller]
    consumed = _consumed(inv, job, hosts[0], run_id, consume, consume_run)
    merged_env = {**inv.env, **job.env}
    ctx = JobContext(inventory=inv, job=job, run_id=run_id, hosts=hosts,
                     env={k: v.value for k, v in merged_env.items() if not v.secret},
                     env_names=sorted(merged_env), program=_program(inv, job, run_id, consumed, resume),
                     run_dir=lambda h: HostPath(f"{h.workdir}/{RUNS_DIR}/{run_id}"),
                     master_addr=master_addr or inv.network.master_addr or host_address(hosts[0]),
                     address=host_address)
    launch = backends.select(inv, job, len(hosts)).launch(ctx)
    secret_names = sorted(k for k, v in merged_env.items() if v.secret)
    output_dir = _output_dir(inv, hosts[0], run_id, job_name)
    return JobPlan(inventory=inv, job=job_name, run_id=run_id, mode=launch.mode, config=job.config,
                   world_size=launch.world_size, placement=launch.placement,
                   hosts=[_host_plan(ctx, hl, secret_names) for hl in launch.hosts], output_dir=output_dir,
                   checkpoint=HostPath(f"{output_dir}/checkpoint.pth"),
                   consumes=job.consumes if consume is None else None, consumed_checkpoint=consumed,
                   program=ctx.program(hosts[0]))


def new_run_id(now=None, token: Optional[str] = None) -> str:
    """A fresh run id `YYYYmmdd-HHMMSS-xxxx` (UTC). Not pure: call it in the shell, pass the id in."""
    import datetime
    import secrets
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{token or secrets.token_hex(2)}"
