"""What every launcher backend receives and returns.

The planner (launcher/plan.py) builds a `JobContext` (the inventory, the job, the run, the hosts in
launch order with the controller first, and how the training program is spelled on each host); a
backend turns it into a `Launch`: the mode, the rank placement and, for every host where a job script
starts, a `HostLaunch` (the rendered launch command, the environment and the per-rank logs). The
job script around the command is the planner's business, the same for every backend, except where a
backend writes the whole script itself (Slurm's batch script: `HostLaunch.script` and `.files`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from launcher.inventory import Host, Inventory, Job
from launcher.paths import HostPath


@dataclass(frozen=True)
class JobContext:
    inventory: Inventory
    job: Job
    run_id: str
    hosts: list                               # Host, controller first
    env: dict                                 # plain (non-secret) variables of the job
    env_names: list                           # every variable name, secret ones too (sorted)
    program: Callable[..., list]              # program(host, extra=()) -> argv of python3 -m mae.<job>
    run_dir: Callable[[Host], HostPath]       # the run directory on a host
    master_addr: str = ""                     # the rendezvous address every host connects to
    address: Callable[[Host], str] = lambda h: h.address   # a host's address as the other hosts reach it

    @property
    def job_name(self) -> str:
        return self.job.name

    @property
    def controller(self) -> Host:
        return self.hosts[0]

    def file(self, host: Host, name: str) -> HostPath:
        return HostPath(f"{self.run_dir(host)}/{name}")

    def placement(self, per_host: int) -> dict:
        """host name -> global ranks, `per_host` consecutive ranks a host in launch order."""
        return {h.name: list(range(i * per_host, (i + 1) * per_host)) for i, h in enumerate(self.hosts)}


@dataclass(frozen=True)
class HostLaunch:
    host: Host
    node_rank: int                # index among the job's hosts (controller = 0)
    ranks: list                   # global ranks (poprun: instances) this host's script starts
    command: str                  # the rendered launch command
    env: dict                     # variables the script exports (no secrets)
    rank_logs: dict               # global rank -> log path ({} when all output goes to the host log)
    command_log: Optional[HostPath] = None   # where the command's own output goes, if not the host log
    script: Optional[str] = None  # the whole script, when the backend writes it (Slurm: the sbatch script)
    files: Optional[dict] = None  # its files (run_dir, script_path, log_path, pid_path, exit_path,
                                  # secrets_path) when they are not the planner's <job>.<host>.* names


@dataclass(frozen=True)
class Launch:
    mode: str                     # the backend's name
    world_size: int               # processes: torchrun ranks / poprun instances / 1
    placement: dict               # host name -> global ranks placed there (every host of the job)
    hosts: list                   # HostLaunch for every host where a script is started
