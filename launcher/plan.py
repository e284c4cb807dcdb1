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

Ranks: with the default `network.rendezvous: static`, node ranks are fixed (controller = node 0, then
the other hosts in inventory order), so HostPlan.ranks / rank_logs are exact. With `c10d`, torchrun
assigns node ranks in the order hosts join: ranks / rank_logs are then the expected placement only
(each rank still writes `<job>.rank<RANK>.log` under its own real RANK).

Launch modes: 'torchrun' (a script on every host, the controller is node 0 and the rendezvous),
'poprun' (one script on the controller; poprun starts the instances on all hosts through MPI) and
'single' (poprun inventory with 1 instance on 1 host: one python process, as on an IPU-POD16).
"""
import re
from dataclasses import dataclass, field
from typing import Optional

from launcher.errors import PlanError
from launcher.inventory import Host, HostPath, Inventory
from launcher.render import render_template

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RUNS_DIR = "runs"  # relative to the host's workdir; locally, run records live in <repo>/runs too
ENTRY = {"pretrain": "mae.pretrain", "finetune": "mae.finetune", "validate": "mae.validate"}
CONSUME_FLAG = {"finetune": "--finetune", "validate": "--resume"}


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
    mode: str                      # 'torchrun' | 'poprun' | 'single'
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


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise PlanError(f"run id {run_id!r} is not usable: use letters, digits, '.', '_' or '-' (up to 100, not starting with '.' or '-')")
    return run_id


def _file(run_dir: HostPath, name: str) -> HostPath:
    return HostPath(f"{run_dir}/{name}")


def _output_dir(inv: Inventory, host: Host, run_id: str, job: str) -> HostPath:
    return HostPath(f"{inv.host_path(host, inv.paths.output)}/{run_id}/{job}")


def plan_job(inv: Inventory, job_name: str, run_id: str, consume: Optional[str] = None,
             consume_run: Optional[str] = None, resume: bool = False) -> JobPlan:
    """Plan `job_name` of `inv` as run `run_id`.

    consume: an explicit checkpoint path for finetune (--finetune) / validate (--resume); by default
      the consumed job's `<output>/<consume_run or run_id>/<consumed job>/checkpoint.pth`.
    resume: pretrain/finetune continue from the last checkpoint of this run's output dir (--resume).
    """
    job = inv.job(job_name)
    check_run_id(run_id)
    if consume_run is not None:
        check_run_id(consume_run)
    hosts = [inv.controller] + [h for h in inv.hosts if h is not inv.controller]
    controller = hosts[0]
    output_dir = _output_dir(inv, controller, run_id, job_name)
    consumed = None
    if consume is not None:
        consumed = HostPath(consume) if consume.startswith(("/", "~/")) else inv.host_path(controller, consume)
    elif job.consumes is not None:
        consumed = HostPath(f"{_output_dir(inv, controller, consume_run or run_id, job.consumes)}/checkpoint.pth")
    if job_name in CONSUME_FLAG and consumed is None and CONSUME_FLAG[job_name] not in job.args:
        raise PlanError(f"{inv.source_path}: job {job_name} needs a checkpoint: set `consumes:` or pass {CONSUME_FLAG[job_name]} CKPT in its args")

    single = inv.launcher == "poprun" and job.instances == 1 and len(hosts) == 1
    if inv.launcher == "torchrun":
        mode, per_host = "torchrun", job.nproc_per_node
    elif single:  # as on an IPU-POD16: no poprun, the process finds its partition through IPUOF_*
        mode, per_host = "single", 1
    else:
        mode, per_host = "poprun", job.instances // len(hosts)
    placement = {h.name: list(range(i * per_host, (i + 1) * per_host)) for i, h in enumerate(hosts)}
    world_size = per_host * len(hosts)
    started = hosts if mode == "torchrun" else [controller]

    def program_for(host: Host) -> list:
        argv = ["python3", "-m", ENTRY[job_name], "--config", job.config]
        data = inv.host_path(host, job.data if job.data is not None else inv.paths.data)
        if data is not None:
            argv += ["--data_path", data]
        if inv.launcher == "poprun" and inv.paths.executable_cache is not None and single:
            argv += ["--executable_cache_path", inv.host_path(host, inv.paths.executable_cache)]
        argv += ["--output_dir", _output_dir(inv, host, run_id, job_name)]
        if consumed is not None:
            argv += [CONSUME_FLAG[job_name], consumed]
        elif resume and job_name != "validate":
            argv += ["--resume"]
        if resume and consumed is not None and job_name == "finetune":
            argv += ["--resume"]
        return argv + list(job.args)

    merged_env = {**inv.env, **job.env}
    plain_env = {k: v.value for k, v in merged_env.items() if not v.secret}
    secret_names = sorted(k for k, v in merged_env.items() if v.secret)
    host_plans = []
    for host in started:
        node_rank = hosts.index(host)
        run_dir = HostPath(f"{host.workdir}/{RUNS_DIR}/{run_id}")
        program = program_for(host)
        env = dict(plain_env)
        rank_logs, command_log = {}, None
        if mode == "torchrun":
            if inv.network.interface:
                env.setdefault("GLOO_SOCKET_IFNAME", inv.network.interface)
                env.setdefault("NCCL_SOCKET_IFNAME", inv.network.interface)
            addr = controller.address
            endpoint = f"[{addr}]:{inv.network.master_port}" if ":" in addr else f"{addr}:{inv.network.master_port}"
            command = render_template(
                "torchrun.j2", nnodes=len(hosts), nproc_per_node=per_host, node_rank=node_rank,
                rendezvous=inv.network.rendezvous, master_addr=addr, master_port=inv.network.master_port,
                endpoint=endpoint, run_id=run_id, launcher_args=list(job.launcher_args),
                rank_log_prefix=_file(run_dir, job_name), program=program)
            rank_logs = {r: _file(run_dir, f"{job_name}.rank{r}.log") for r in placement[host.name]}
        elif mode == "poprun":
            if inv.network.interface:
                env.setdefault("TCP_IF_INCLUDE", inv.network.interface)
            cluster = inv.cluster
            part = inv.partitions[job.partition]
            command = render_template(
                "poprun.j2", verbosity=inv.poprun.verbosity, log_level=inv.poprun.log_level,
                hosts=[h.address for h in hosts], instances=job.instances, replicas=job.replicas,
                ipus_per_replica=job.ipus_per_replica, update=part.update, reset=part.reset, remove=part.remove,
                vipu_server_host=cluster.vipu_server_host, vipu_server_port=cluster.vipu_server_port,
                partition=job.partition, allocation=cluster.allocation, timeout=cluster.timeout,
                executable_cache=inv.host_path(host, inv.paths.executable_cache),
                interface=inv.network.interface, forward_env=sorted(merged_env),
                launcher_args=list(job.launcher_args), program=program)
        else:
            cluster = inv.cluster
            env["IPUOF_VIPU_API_HOST"] = cluster.vipu_server_host
            if cluster.vipu_server_port is not None:
                env["IPUOF_VIPU_API_PORT"] = str(cluster.vipu_server_port)
            env["IPUOF_VIPU_API_PARTITION_ID"] = job.partition
            env["IPUOF_VIPU_API_TIMEOUT"] = str(cluster.timeout)
            command = render_template("program.j2", program=program)
            command_log = _file(run_dir, f"{job_name}.rank0.log")
            rank_logs = {0: command_log}
        command = command.rstrip("\n")
        files = dict(run_dir=run_dir, script_path=_file(run_dir, f"{job_name}.{host.name}.sh"),
                     log_path=_file(run_dir, f"{job_name}.{host.name}.log"),
                     pid_path=_file(run_dir, f"{job_name}.{host.name}.pid"),
                     exit_path=_file(run_dir, f"{job_name}.{host.name}.exit"),
                     secrets_path=_file(run_dir, f"{job_name}.{host.name}.secrets"))
        host_out = _output_dir(inv, host, run_id, job_name)
        script = render_template(
            "job.sh.j2", run_id=run_id, job=job_name, host=host.name, workdir=host.workdir,
            sdk_enable=[inv.host_path(host, s) for s in inv.paths.sdk_enable],
            venv=inv.host_path(host, inv.paths.venv), env=env, secret_names=secret_names,
            output_dir=host_out, command=command, command_log=command_log, **files)
        host_plans.append(HostPlan(host=host, node_rank=node_rank, ranks=placement[host.name] if mode != "poprun" else list(range(world_size)),
                                   script=script, command=command, env=env, secret_names=secret_names,
                                   rank_logs=rank_logs, output_dir=host_out, **files))
    return JobPlan(inventory=inv, job=job_name, run_id=run_id, mode=mode, config=job.config, world_size=world_size,
                   placement=placement, hosts=host_plans, output_dir=output_dir,
                   checkpoint=HostPath(f"{output_dir}/checkpoint.pth"), consumes=job.consumes if consume is None else None,
                   consumed_checkpoint=consumed, program=program_for(controller))


def new_run_id(now=None, token: Optional[str] = None) -> str:
    """A fresh run id `YYYYmmdd-HHMMSS-xxxx` (UTC). Not pure: call it in the shell, pass the id in."""
    import datetime
    import secrets
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{token or secrets.token_hex(2)}"
