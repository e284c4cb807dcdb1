"""A real Slurm cluster on this machine: `munged`, `slurmctld` and N `slurmd` daemons.

Everything lives in one private directory: a generated munge key, `slurm.conf`, `cgroup.conf`,
state and spool directories, pid and log files. The nodes are `node1..nodeN` on 127.0.0.2x, each
slurmd on its own port (Debian's slurmd is one daemon per name and port, so several fit on one
machine). No cgroups and no systemd: `proctrack/linuxproc`, no accounting. Tasks are bound to their
CPUs (`task/affinity` with `TaskPluginParam=Threads`, sched_setaffinity only), as on GPU clusters that
bind: a step's task sees only its own `--cpus-per-task` CPUs, so a job step that forgets to pass it
on (srun does not inherit it since Slurm 22.05) confines torchrun and its ranks to one CPU.

Clients (`sbatch`, `squeue`, `scancel`, `sinfo`) find this cluster through `SLURM_CONF`
(`SlurmCluster.env()`); the munge socket is named in slurm.conf (`AuthInfo=socket=...`).

Used by the pytest fixture `slurm` (tests/slurm_fixtures.py) and by `make slurm-up` /
`make slurm-down` (`python tests/slurm.py up|down --dir .slurm`). Daemons are stopped by the pids
this module started; job steps (`slurmstepd` and what they started) by the cluster's own token in
their environment, never by pattern.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
TOKEN_VAR = "MAE_LAUNCH_TEST_SLURM"
BASE_ADDRESS = 21  # nodes live on 127.0.0.21, 127.0.0.22, ...
DAEMONS = ("munged", "slurmctld", "slurmd")

SLURM_CONF = """\
ClusterName=maetest
SlurmctldHost={control_host}({control_addr})
SlurmctldPort={ctld_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
TaskPluginParam=Threads
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
EnforcePartLimits=NO
SwitchType=switch/none
LaunchParameters=use_interactive_step
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
KillWait=5
InactiveLimit=0
Waittime=0
MessageTimeout=20
SlurmdTimeout=300
SchedulerParameters=bf_interval=1,sched_min_interval=100000
{nodes}
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
PartitionName=small Nodes=ALL MaxNodes=1 MaxTime=INFINITE State=UP
"""
NODE_LINE = "NodeName={name} NodeAddr={address} NodeHostname={hostname} Port={port} CPUs={cpus} RealMemory=1000 State=UNKNOWN"
CGROUP_CONF = "CgroupPlugin=autodetect\nIgnoreSystemd=yes\nConstrainCores=no\nConstrainDevices=no\nConstrainRAMSpace=no\n"


def _free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (ProcessLookupError, OSError):
        return False


def _cmdline(pid: int) -> bytes:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def token_processes(token: str) -> list[int]:
    """Pids of live processes whose environment carries this cluster's token (job steps)."""
    needle = f"{TOKEN_VAR}={token}".encode()
    pids = []
    for d in pathlib.Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle in (d / "environ").read_bytes().split(b"\0") and _alive(int(d.name)):
                pids.append(int(d.name))
        except OSError:
            continue
    return pids


def available() -> str | None:
    """None when real Slurm can run here, else why not."""
    missing = [d for d in DAEMONS if not shutil.which(d, path="/usr/sbin:/usr/bin:/sbin")]
    missing += [c for c in ("sbatch", "squeue", "sinfo", "scancel") if not shutil.which(c)]
    if missing:
        return f"missing {', '.join(missing)} (apt-get install slurm-wlm munge; see .ci/run)"
    if os.geteuid() != 0:
        return "the test Slurm cluster runs its daemons as root"
    return None


class SlurmCluster:
    """munged + slurmctld + `n` slurmd nodes (each `cpus` CPUs) under `root`."""

    def __init__(self, root: pathlib.Path | str, n: int = 2, cpus: int = 1):
        self.root = pathlib.Path(root).resolve()
        self.n, self.cpus = n, cpus
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self.token = f"{self.root}"
        self.nodes = [f"node{i + 1}" for i in range(n)]
        self.pids: dict[str, int] = {}

    def env(self, base: dict | None = None) -> dict:
        """Environment for clients of this cluster (sbatch, squeue, ... and mae-launch)."""
        return dict(os.environ if base is None else base, SLURM_CONF=str(self.conf))

    def write_config(self) -> None:
        for sub in ("state", "spool", "munge"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for name in self.nodes:
            (self.root / "spool" / name).mkdir(exist_ok=True)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        nodes = "\n".join(NODE_LINE.format(
            name=name, address=f"127.0.0.{BASE_ADDRESS + i}", hostname=socket.gethostname(),
            port=_free_port(), cpus=self.cpus) for i, name in enumerate(self.nodes))
        self.conf.write_text(SLURM_CONF.format(
            control_host=socket.gethostname().split(".")[0], control_addr="127.0.0.1",
            ctld_port=_free_port(), munge_socket=self.munge_socket, root=self.root, nodes=nodes))
        (self.root / "cgroup.conf").write_text(CGROUP_CONF)

    def _spawn(self, key: str, argv: list[str], detach: bool) -> None:
        env = self.env()
        env[TOKEN_VAR] = self.token
        with open(self.root / f"{key}.out", "ab") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                    start_new_session=detach)
        self.pids[key] = proc.pid

    def up(self, detach: bool = False, timeout: float = 60.0, attempts: int = 3) -> "SlurmCluster":
        """Start the daemons; a port taken between choosing and binding it means a retry on new ports."""
        for attempt in range(attempts):
            try:
                return self._up_once(detach, timeout)
            except RuntimeError as exc:
                if "Address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                shutil.rmtree(self.root / "state", ignore_errors=True)
        raise AssertionError("unreachable")

    def _up_once(self, detach: bool, timeout: float) -> "SlurmCluster":
        self.write_config()
        try:
            m = self.root / "munge"
            self.munge_socket.unlink(missing_ok=True)
            self._spawn("munged", ["munged", "-F", "-f", f"--socket={self.munge_socket}",
                                   f"--key-file={m / 'munge.key'}", f"--pid-file={m / 'munged.pid'}",
                                   f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}"], detach)
            self._wait(lambda: self.munge_socket.exists(), 10, "munged")
            self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)], detach)
            self._wait(lambda: self._client(["sinfo", "-h"]).returncode == 0, timeout, "slurmctld")
            for name in self.nodes:
                self._spawn(name, ["slurmd", "-D", "-N", name, "-f", str(self.conf)], detach)
            self._wait(self.all_idle, timeout, "slurmd")
        except BaseException:
            self.down()
            raise
        return self

    def _client(self, argv: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(), timeout=timeout)

    def all_idle(self) -> bool:
        p = self._client(["sinfo", "-h", "-N", "-o", "%N %t"])
        states = dict(line.split() for line in p.stdout.splitlines() if line.strip())
        return p.returncode == 0 and all(states.get(n) == "idle" for n in self.nodes)

    def _wait(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [k for k, pid in self.pids.items() if not _alive(pid)]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while starting: {self.log_tail(dead[0])}")
            if predicate():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{what} not ready after {timeout:.0f}s: {self.log_tail('slurmctld')}")

    def log_tail(self, key: str) -> str:
        for path in (self.root / f"{key}.out", self.root / f"slurmd.{key}.log", self.root / f"{key}.log"):
            if path.exists() and path.stat().st_size:
                return path.read_text(errors="replace")[-1500:]
        return "(no log)"

    def queue(self) -> list[str]:
        """Job ids in the queue (any state squeue shows)."""
        return self._client(["squeue", "-h", "-o", "%i"]).stdout.split()

    def wait_empty(self, timeout: float = 30.0) -> list[str]:
        """Wait until squeue shows no job (COMPLETING ends a few seconds after a step); what is left."""
        deadline = time.monotonic() + timeout
        while (left := self.queue()) and time.monotonic() < deadline:
            time.sleep(0.2)
        return left

    def cancel_all(self, timeout: float = 30.0) -> None:
        if "slurmctld" not in self.pids or not _alive(self.pids["slurmctld"]):
            return
        ids = self.queue()
        if ids:
            self._client(["scancel", *ids])
        deadline = time.monotonic() + timeout
        while self.queue() and time.monotonic() < deadline:
            time.sleep(0.3)

    def down(self) -> None:
        """Cancel every job, stop the daemons (by pid), then any job step left (by token)."""
        try:
            self.cancel_all()
        except (OSError, subprocess.SubprocessError):
            pass
        order = [*self.nodes, "slurmctld", "munged"]
        stop_pids([self.pids[k] for k in order if k in self.pids])
        stop_pids(token_processes(self.token))
        self.pids = {}

    def state(self) -> dict:
        return {"root": str(self.root), "conf": str(self.conf), "token": self.token, "pids": self.pids}


def stop_pids(pids: list[int], grace: float = 10.0) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    for pid in pids:
        while _alive(pid) and time.monotonic() < deadline:
            try:  # reap our own children
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass


def _down(root: pathlib.Path) -> int:
    state_file = root / "slurm.json"
    if not state_file.exists():
        print(f"no Slurm cluster recorded in {state_file}")
        return 0
    state = json.loads(state_file.read_text())
    cluster = SlurmCluster(root, n=0)
    # only pids that are still the daemons we started, with our config or key
    cluster.pids = {k: pid for k, pid in state["pids"].items()
                    if _alive(pid) and str(root).encode() in _cmdline(pid)}
    cluster.nodes = [k for k in cluster.pids if k.startswith("node")]
    cluster.token = state["token"]
    cluster.down()
    state_file.unlink()
    print(f"stopped the Slurm cluster in {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a real Slurm cluster on this machine, for mae-launch")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", default=str(ROOT / ".slurm"))
    parser.add_argument("-n", type=int, default=2, help="slurmd nodes")
    parser.add_argument("--cpus", type=int, default=1, help="CPUs per node")
    args = parser.parse_args(argv)
    root = pathlib.Path(args.dir).resolve()
    if args.action == "down":
        return _down(root)
    why = available()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    _down(root)
    cluster = SlurmCluster(root, args.n, args.cpus).up(detach=True)
    (root / "slurm.json").write_text(json.dumps(cluster.state(), indent=1))
    print(f"Slurm cluster up: nodes {', '.join(cluster.nodes)} ({args.cpus} CPU each)")
    print(f"export SLURM_CONF={cluster.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
