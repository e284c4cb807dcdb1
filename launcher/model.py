"""The resolved inventory: hosts, jobs and the whole `Inventory`, as the launcher uses them.

Built by launcher/inventory.py from a validated YAML file; every host path is absolute or starts
with `~/` (see `Inventory.host_path`).
"""
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from launcher.errors import InventoryError, PlanError
from launcher.paths import HostPath
from launcher.schema import (ClusterSpec, InventorySpec, NetworkSpec, PathsSpec, PoprunSpec, SlurmSpec,
                             SshSettings)

MASK = "***"


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    port: Optional[int]              # None: ~/.ssh/config, then 22
    user: Optional[str]              # None: ~/.ssh/config, then the local user
    identity_file: Optional[str]
    proxy_jump: Optional[str]
    known_hosts: Optional[str]       # None: ~/.ssh/known_hosts (and ssh config's UserKnownHostsFile)
    host_key_policy: Optional[str]   # 'strict' | 'accept-new'; None: ssh config's, else strict
    connect_timeout: Optional[float]
    connection: str                  # 'ssh' | 'local'
    workdir: HostPath                # resolved: absolute or ~/...
    slots: Optional[int]
    host_timeout: float = 60.0       # seconds a running job's host may stay unreachable before the run is stopped
    control_persist: float = 60.0    # seconds an idle OpenSSH master of deploy stays for the next command; 0: closed at once
    ssh_config: Optional[str] = None  # the OpenSSH client config file (ssh -F); None: ~/.ssh/config
    # filled by launcher/sshconf.resolve from OpenSSH's effective settings (ssh -G) where the inventory
    # leaves a key unset; empty on a Host as loaded
    proxy_command: Optional[str] = None
    known_hosts_files: str = ""      # whitespace-separated, as OpenSSH's UserKnownHostsFile
    host_key_alias: Optional[str] = None
    alive_interval: Optional[int] = None
    identity_files: str = ""         # one path a line
    identities_from_config: bool = False
    identity_agent: Optional[str] = None
    resolved_by: str = ""

    @property
    def is_local(self) -> bool:
        return self.connection == "local"


@dataclass(frozen=True)
class Job:
    name: str                        # pretrain | finetune | validate (entry point python -m mae.<name>)
    config: str
    partition: Optional[str]
    replicas: Optional[int]
    ipus_per_replica: Optional[int]
    instances: Optional[int]         # poprun
    nproc_per_node: Optional[int]    # torchrun
    args: tuple
    launcher_args: tuple
    consumes: Optional[str]
    data: Optional[str]              # as written; resolve per host with Inventory.host_path
    env: dict


@dataclass(frozen=True)
class Inventory:
    name: str
    launcher: str
    hosts: list
    controller: Host
    ssh: SshSettings
    cluster: Optional[ClusterSpec]
    partitions: dict
    paths: PathsSpec
    network: NetworkSpec
    poprun: PoprunSpec
    env: dict                        # name -> EnvValue (value, secret)
    jobs: dict                       # name -> Job
    source_path: Path
    spec: InventorySpec = field(repr=False, compare=False)
    scheduler: str = "ssh"           # 'ssh' | 'slurm'
    slurm: Optional[SlurmSpec] = None  # scheduler slurm: the sbatch request; hosts = [submit host]

    @property
    def is_slurm(self) -> bool:
        return self.scheduler == "slurm"

    # problems that matter only to commands that connect (a missing identity_file): see require_local_files
    local_problems: tuple = field(default=(), repr=False, compare=False)

    def require_local_files(self) -> None:
        """Refuse (every problem, file:line) when a file this machine needs to connect is missing."""
        if self.local_problems:
            raise InventoryError(*self.local_problems)

    def host(self, name: str) -> Host:
        for h in self.hosts:
            if h.name == name:
                return h
        raise PlanError(f"{self.source_path}: no host named {name!r}; hosts are {', '.join(h.name for h in self.hosts)}")

    def job(self, name: str) -> Job:
        if name not in self.jobs:
            known = ", ".join(self.jobs) or "none"
            raise PlanError(f"{self.source_path}: no job named {name!r} in this inventory (jobs: {known})")
        return self.jobs[name]

    def host_path(self, host: Host, value: Optional[str]) -> Optional[HostPath]:
        """`value` as seen on `host`: relative paths are joined to the host's workdir."""
        if value is None:
            return None
        return join_path(host.workdir, expand_local(value) if host.is_local else value)

    def secret_values(self) -> list:
        """Every secret value (inventory and job env), for scrubbing text before it is stored."""
        envs = [self.env] + [j.env for j in self.jobs.values()]
        return sorted({v.value for env in envs for v in env.values() if v.secret and v.value})

    def snapshot(self) -> dict:
        """Plain data for run records and printing: secrets replaced by '***'."""
        data = self.spec.model_dump(mode="json", by_alias=True, exclude_none=True)

        def mask(env):
            return {k: (MASK if v.get("secret") else v["value"]) for k, v in env.items()}

        data["env"] = mask(data.get("env", {}))
        for job in data.get("jobs", {}).values():
            if job.get("env"):
                job["env"] = mask(job["env"])
        data["hosts"] = [{k: v for k, v in vars(h).items() if v is not None} for h in self.hosts]
        data["controller"] = self.controller.name
        data["source_path"] = str(self.source_path)
        return data




def expand_local(value: str) -> str:
    return os.path.expanduser(value) if value.startswith("~") else value


def join_path(base: str, value: str) -> HostPath:
    if value == "~" or value.startswith("~/") or value.startswith("/"):
        return HostPath(posixpath.normpath(value) if value.startswith("/") else value)
    return HostPath(posixpath.normpath(posixpath.join(base, value)))


