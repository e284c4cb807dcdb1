"""Load an inventory: YAML → schema (launcher/schema.py) → cross-checks → resolved `Inventory`.

Every problem raises `InventoryError` with one sentence `file:line: key.path: what is wrong; what
to do`. Nothing runs before the whole inventory is known to be consistent.

Paths: absolute, `~/...` (the host's home; templates render it as "$HOME"/...), or relative.
A relative `workdir` is relative to the inventory file's folder for `connection: local` hosts and to
the home directory on SSH hosts; other relative paths are relative to the host's workdir. After
loading, every host path is absolute or starts with `~/` (see `host_path`).
"""
import os
import posixpath
from pathlib import Path
from typing import Optional

import pydantic
import yaml

from launcher import hostrange, yamlfile
from launcher.errors import InventoryError
from launcher.jobs import JOB_KINDS, JOB_NAMES
from launcher.messages import Where, duplicate_problems, schema_problems
from launcher.model import Host, Inventory, Job, expand_local  # noqa: F401 (re-exported for callers)
from launcher.paths import HostPath
from launcher.schema import HostSpec, InventorySpec, JobSpec, SlurmSpec

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_HOST_TIMEOUT = 60.0  # a blip (sleep, VPN reconnect) shorter than this never stops a run
DEFAULT_CONTROL_PERSIST = 60.0  # an idle OpenSSH master is kept this long for the next command (0: off)
CONFIGS_FILE = PACKAGE_ROOT / "mae" / "configs.yml"


def known_configs(path: Path = CONFIGS_FILE) -> Optional[dict]:
    """Named configs of mae/configs.yml, read as data: name -> settings (None when the file is absent)."""
    try:
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 6x faster
    except FileNotFoundError:
        return None
    configs = data.get("configs", data) if isinstance(data, dict) else {}
    return {str(k): (v if isinstance(v, dict) else {}) for k, v in configs.items()}


def load_inventory(path, config_names: Optional[dict] = None) -> Inventory:
    """Read, validate and resolve the inventory at `path`.

    `config_names`: the named mae configs (name -> settings); by default read from mae/configs.yml
    (no check when that file is absent).
    """
    path = Path(path)
    data, lines = yamlfile.load(path)
    return _from_data(data, lines, path, config_names)


def parse_inventory(text: str, path="<inventory>", config_names: Optional[dict] = None) -> Inventory:
    """Like load_inventory, from YAML text; `path` names it in messages (and anchors relative workdirs)."""
    path = Path(path)
    data, lines = yamlfile.loads(text, path)
    return _from_data(data, lines, path, config_names)


def _from_data(data, lines: dict, path: Path, config_names) -> Inventory:
    where = Where(path, lines)
    if not isinstance(data, dict):
        raise where.error((), "an inventory is a YAML mapping with at least name, launcher, hosts and jobs")
    problems = duplicate_problems(where)
    try:
        spec = InventorySpec.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _all(problems + schema_problems(where, exc)) from None
    except (RecursionError, ValueError, TypeError) as exc:  # cyclic aliases and the like
        raise where.error((), f"the inventory cannot be validated ({' '.join(str(exc).split())[:200]})") from None
    configs = known_configs() if config_names is None else config_names
    return _resolve(spec, path, where, configs, problems)


def _check_scheduler(spec: InventorySpec, where: Where) -> InventorySpec:
    """Slurm inventories name at most one host (the submit host; default: this machine)."""
    if spec.scheduler != "slurm":
        if spec.slurm is not None:
            raise where.error(("slurm",), "a slurm section needs `scheduler: slurm`; add it or remove the section")
        if spec.hosts is None:
            raise where.error(("hosts",), "this key is required; list the hosts (only `scheduler: slurm` inventories may leave it out)")
        return spec
    if spec.launcher != "torchrun":
        raise where.error(("launcher",), "Slurm inventories run torchrun jobs (poprun under Slurm is not supported); use launcher: torchrun")
    if spec.hosts is not None and (len(spec.hosts) > 1 or len(hostrange.expand(spec.hosts[0].name)) > 1):
        raise where.error(("hosts",), "a Slurm inventory names one host, the submit host (login node); the compute nodes come from Slurm")
    hosts = spec.hosts or [HostSpec(name="submit", connection="local")]
    return spec.model_copy(update={"hosts": hosts, "slurm": spec.slurm or SlurmSpec()})


def _default(value, default):
    return default if value is None else value


def _all(problems: list) -> InventoryError:
    """One error carrying every problem, in file order (the line after `file:`)."""
    def line(text):
        head = text.split(": ", 1)[0].rsplit(":", 1)
        return int(head[1]) if len(head) == 2 and head[1].isdigit() else 0
    return InventoryError(*sorted(dict.fromkeys(problems), key=line))


def _collect(problems: list, fn, *args):
    """fn(*args), or None with its problems added to `problems`."""
    try:
        return fn(*args)
    except InventoryError as exc:
        problems.extend(exc.problems)
        return None


def _resolve(spec: InventorySpec, path: Path, where: Where, configs, problems: list) -> Inventory:
    spec = _check_scheduler(spec, where)
    before = len(problems)
    hosts = _resolve_hosts(spec, path, where, problems)
    if len(problems) > before:  # checks below need every host: they would only add noise
        raise _all(problems)
    names = [h.name for h in hosts]
    controller = hosts[0]
    if spec.controller is not None:
        if spec.controller not in names:
            problems.append(str(where.error(("controller",), f"{spec.controller!r} is not one of the hosts ({', '.join(names)}); name one of them")))
        else:
            controller = hosts[names.index(spec.controller)]
    if spec.launcher == "poprun" and spec.cluster is None:
        problems.append(str(where.error(("launcher",), "poprun inventories need a `cluster:` section with vipu_server_host; add it")))
    jobs = {}
    for name in JOB_NAMES:
        job_spec = getattr(spec.jobs, f"{name}_")
        if job_spec is not None and not (spec.launcher == "poprun" and spec.cluster is None):
            n_hosts, on = (spec.slurm.nodes, []) if spec.scheduler == "slurm" else (len(hosts), hosts)
            job = _collect(problems, _resolve_job, spec, name, job_spec, n_hosts, on, where, configs)
            if job is not None:
                jobs[name] = job
    if not jobs and not problems:
        problems.append(str(where.error(("jobs",), "no job defined; define at least one of pretrain, finetune, validate")))
    if not problems:
        _collect(problems, _check_consumes, jobs, where)
    if problems:
        raise _all(problems)
    return Inventory(name=spec.name, launcher=spec.launcher, hosts=hosts, controller=controller, ssh=spec.ssh,
                     cluster=spec.cluster, partitions=dict(spec.partitions), paths=spec.paths, network=spec.network,
                     poprun=spec.poprun, env=dict(spec.env), jobs=jobs, source_path=path, spec=spec,
                     scheduler=spec.scheduler, slurm=spec.slurm,
                     local_problems=tuple(_identity_problems(spec, hosts, where)))


def _identity_problems(spec: InventorySpec, hosts: list, where: Where) -> list:
    """A key file this machine must read to connect, named in the inventory but missing here."""
    out = []
    for index, hs in enumerate(spec.hosts):
        value = hs.identity_file if hs.identity_file is not None else spec.ssh.identity_file
        if value is None or hs.connection == "local":
            continue
        loc = ("hosts", index, "identity_file") if hs.identity_file is not None else ("ssh", "identity_file")
        if not Path(os.path.expanduser(value)).is_file():
            out.append(str(where.error(loc, f"{value!r} does not exist on this machine; "
                                            "give the path of the private key ssh should use")))
    return list(dict.fromkeys(out))


def _resolve_hosts(spec: InventorySpec, path: Path, where: Where, problems: list) -> list:
    hosts, seen, addresses = [], {}, {}
    for index, hs in enumerate(spec.hosts):
        hosts.extend(_collect(problems, _resolve_entry, spec, index, hs, path, where, seen, addresses) or [])
    return hosts


def _resolve_entry(spec: InventorySpec, index: int, hs, path: Path, where: Where, seen: dict, addresses: dict) -> list:
    """The host(s) of one `hosts:` entry (a name range gives several)."""
    hosts = []
    loc = ("hosts", index)
    try:
        names = hostrange.expand(hs.name)
    except ValueError as exc:
        raise where.error(loc + ("name",), str(exc)) from None
    if hs.address is not None and len(names) > 1:
        raise where.error(loc + ("address",), f"one address for the {len(names)} hosts of range {hs.name!r}; give each host its own entry")
    workdir = _workdir(spec, hs, path, where, loc)

    def pick(key):
        own = getattr(hs, key)
        return own if own is not None else getattr(spec.ssh, key)

    for name in names:
        if not name or name.startswith("-") or "[" in name or "]" in name or "," in name:
            raise where.error(loc + ("name",), f"{name!r} is not a usable host name")
        if name in seen:
            raise where.error(loc + ("name",), f"host {name!r} is listed twice (first at hosts[{seen[name]}]); remove one")
        seen[name] = index
        address = hs.address or name
        host = Host(name=name, address=address, port=pick("port"), user=pick("user"),
                    identity_file=pick("identity_file"), proxy_jump=pick("proxy_jump"),
                    known_hosts=pick("known_hosts"), host_key_policy=pick("host_key_policy"), ssh_config=pick("ssh_config"),
                    connect_timeout=pick("connect_timeout"), connection=hs.connection, workdir=workdir,
                    slots=hs.slots, host_timeout=pick("host_timeout") or DEFAULT_HOST_TIMEOUT,
                    control_persist=_default(pick("control_persist"), DEFAULT_CONTROL_PERSIST))
        if not host.is_local:
            key = (host.address, host.port or 22, host.user)
            if key in addresses:
                raise where.error(loc + ("address" if hs.address else "name",), f"hosts {addresses[key]!r} and {name!r} are the same machine ({address}); list it once")
            addresses[key] = name
        hosts.append(host)
    return hosts


def _workdir(spec: InventorySpec, hs, path: Path, where: Where, loc) -> HostPath:
    workdir = hs.workdir if hs.workdir is not None else spec.paths.workdir
    if hs.connection == "local":
        workdir = expand_local(workdir)
        return HostPath(os.path.normpath(workdir if os.path.isabs(workdir) else path.resolve().parent / workdir))
    if workdir.startswith("/"):
        return HostPath(posixpath.normpath(workdir))
    if workdir == "~" or workdir.startswith("~/"):
        return HostPath(workdir)
    if workdir.startswith("~"):
        raise where.error(loc + ("workdir",), f"{workdir!r}: only ~/ (this user's home) is understood; write an absolute path")
    return HostPath(posixpath.normpath("~/" + workdir))


def _resolve_job(spec, name: str, js: JobSpec, n_hosts: int, hosts, where: Where, configs) -> Job:
    loc = ("jobs", name)
    if configs is not None:
        if js.config not in configs:
            raise where.error(loc + ("config",), f"unknown config {js.config!r}; named configs are in mae/configs.yml ({', '.join(sorted(configs))})")
        kind = configs[js.config].get("job")
        needed = JOB_KINDS[name].config_kind
        if kind is not None and kind != needed:
            raise where.error(loc + ("config",), f"config {js.config!r} is a {kind} config but job {name} needs a {needed} config")
    instances, nproc = js.instances, js.nproc_per_node
    if spec.launcher == "poprun":
        if js.nproc_per_node is not None:
            raise where.error(loc + ("nproc_per_node",), "nproc_per_node is for torchrun inventories; poprun jobs use instances")
        for key in ("partition", "replicas", "ipus_per_replica"):
            if getattr(js, key) is None:
                raise where.error(loc, f"poprun jobs need `{key}`; add it")
        if js.partition not in spec.partitions:
            known = ", ".join(spec.partitions) or "none defined"
            raise where.error(loc + ("partition",), f"unknown partition {js.partition!r} (partitions: {known}); define it under partitions")
        ipus = spec.partitions[js.partition].ipus
        if js.replicas * js.ipus_per_replica != ipus:
            raise where.error(loc, f"replicas x ipus_per_replica = {js.replicas} x {js.ipus_per_replica} = {js.replicas * js.ipus_per_replica} IPUs but partition {js.partition!r} has {ipus}; make them equal")
        instances = instances or 1
        if js.replicas % instances:
            raise where.error(loc + ("instances",), f"{instances} instances do not divide {js.replicas} replicas; use a divisor of the replica count")
        if instances % n_hosts:
            raise where.error(loc + ("instances",), f"{instances} instances cannot spread evenly over {n_hosts} hosts; use a multiple of {n_hosts}")
        per_host = instances // n_hosts
        if configs is not None and js.config in configs:
            cfg = configs[js.config]
            for key, cfg_key in (("replicas", "replica"), ("ipus_per_replica", "ipus_per_replica")):
                if cfg.get(cfg_key) is not None and cfg.get(cfg_key) != getattr(js, key):
                    raise where.error(loc + (key,), f"{getattr(js, key)} disagrees with config {js.config!r} ({cfg_key}: {cfg.get(cfg_key)}); make them equal or pass --{cfg_key} in args")
    else:
        for key in ("partition", "ipus_per_replica", "instances"):
            if getattr(js, key) is not None:
                raise where.error(loc + (key,), f"{key} is for poprun inventories; torchrun jobs use nproc_per_node")
        nproc = nproc or (spec.slurm.gpus_per_node if spec.slurm is not None else None) or 1
        if js.replicas is not None and js.replicas != nproc * n_hosts:
            what = "Slurm nodes" if spec.scheduler == "slurm" else "hosts"
            raise where.error(loc + ("replicas",), f"replicas {js.replicas} != {n_hosts} {what} x nproc_per_node {nproc}; fix one of them")
        per_host = nproc
    for h in hosts:
        if h.slots is not None and per_host > h.slots:
            raise where.error(loc, f"runs {per_host} processes per host but host {h.name!r} has {h.slots} slots")
    if js.consumes is not None and js.consumes not in JOB_NAMES:
        raise where.error(loc + ("consumes",), f"{js.consumes!r} is not a job; use pretrain, finetune or validate")
    return Job(name=name, config=js.config, partition=js.partition, replicas=js.replicas,
               ipus_per_replica=js.ipus_per_replica, instances=instances, nproc_per_node=nproc,
               args=tuple(js.args), launcher_args=tuple(js.launcher_args), consumes=js.consumes,
               data=js.data, env=dict(js.env))


def _check_consumes(jobs: dict, where: Where) -> None:
    for name, job in list(jobs.items()):
        default = JOB_KINDS[name].consumes
        if job.consumes is None and default in jobs:
            jobs[name] = job = _replace(job, consumes=default)
        if job.consumes is not None and job.consumes not in jobs:
            raise where.error(("jobs", name, "consumes"), f"job {job.consumes!r} is not defined in this inventory; define it or drop consumes")
    for name in jobs:
        chain, current = [name], jobs[name].consumes
        while current is not None:
            if current in chain:
                cycle = " -> ".join(chain[chain.index(current):] + [current])
                raise where.error(("jobs", name, "consumes"), f"jobs consume each other in a cycle ({cycle}); break it")
            chain.append(current)
            current = jobs[current].consumes


def _replace(job: Job, **changes) -> Job:
    from dataclasses import replace
    return replace(job, **changes)


def resolve(spec: InventorySpec, source_path: Path) -> Inventory:
    """Resolve an already validated (possibly modified) spec again, with every cross-check."""
    return _resolve(spec, source_path, Where(source_path, {}), known_configs(), [])
