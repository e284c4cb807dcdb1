"""A real loopback test cluster: N OpenSSH `sshd` daemons on 127.0.0.x, one per "host".

Each host gets its own host key, its own authorized_keys (one generated client key serves all),
its own sshd config/pid/log and its own workdir. The cluster writes a known_hosts file with every
host key and an inventory YAML that points `paths.venv` at this repository's virtualenv (one venv
serves every host; code is synced into each workdir).

Used by the pytest fixtures (tests/cluster_fixtures.py) and by `make cluster-up N=4` /
`make cluster-down` (`python tests/cluster.py up|down --dir .cluster`). Daemons are stopped by the
pids this module started, never by pattern.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
SSHD = os.environ.get("MAE_LAUNCH_TEST_SSHD", "/usr/sbin/sshd")
BASE_ADDRESS = 11  # hosts live on 127.0.0.11, 127.0.0.12, ...

SSHD_CONFIG = """\
ListenAddress {listen}:{port}
HostKey {host_key}
PidFile {pid_file}
AuthorizedKeysFile {authorized_keys}
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
UseDNS no
PrintMotd no
MaxStartups 200:30:400
MaxSessions 100
LogLevel INFO
Subsystem sftp internal-sftp
"""
# With `plain_login`, sessions start with SHLVL=1: bash then counts itself a nested shell and does not
# read ~/.bashrc, so an SSH command costs what a host with a plain login shell costs (no `pyenv init`
# or `conda init` per command). Benchmarks only; tests run the login shell as it is.
PLAIN_LOGIN = "SetEnv SHLVL=1\n"


def _keygen(path: pathlib.Path, comment: str) -> None:
    if path.exists():
        path.unlink()
    pathlib.Path(str(path) + ".pub").unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdout=subprocess.DEVNULL)


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie we started is not alive
        return pathlib.Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


class SshHost:
    def __init__(self, root: pathlib.Path, index: int, port: int | None = None, address: str | None = None,
                 plain_login: bool = False):
        self.index = index
        self.plain_login = plain_login
        self.name = f"host{index}"
        self.address = address or f"127.0.0.{BASE_ADDRESS + index}"  # e.g. "::1" for an IPv6 host
        self.dir = root / self.name
        self.workdir = self.dir / "work"
        self.port = port or _free_port(self.address)
        self.host_key = self.dir / "ssh_host_ed25519_key"
        self.config = self.dir / "sshd_config"
        self.pid_file = self.dir / "sshd.pid"
        self.log = self.dir / "sshd.log"
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None

    def prepare(self, authorized_keys: pathlib.Path) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.host_key.exists():
            _keygen(self.host_key, f"{self.name}-hostkey")
        listen = f"[{self.address}]" if ":" in self.address else self.address
        self.config.write_text(SSHD_CONFIG.format(
            listen=listen, port=self.port, host_key=self.host_key,
            pid_file=self.pid_file, authorized_keys=authorized_keys) + (PLAIN_LOGIN if self.plain_login else ""))

    def known_hosts_line(self) -> str:
        key = pathlib.Path(str(self.host_key) + ".pub").read_text().split()
        return f"[{self.address}]:{self.port} {key[0]} {key[1]}\n"

    def start(self, detach: bool = False) -> None:
        pathlib.Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=detach)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"sshd for {self.name} exited: {self.log.read_text()[-800:]}")
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"sshd for {self.name} not answering on {self.address}:{self.port}")

    def stop(self) -> None:
        """Stop this host's listening sshd (by its pid) and the sessions it forked."""
        if self.pid is None:
            return
        children = _children(self.pid)
        for pid in [self.pid, *children]:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        else:
            deadline = time.monotonic() + 5
            while _alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        self.proc = self.pid = None

    def sshd_pids(self) -> list[int]:
        """This host's listening sshd and every sshd process under it (its sessions), not what they run."""
        out, todo = [], [self.pid] if self.pid else []
        while todo:
            pid = todo.pop()
            try:
                comm = pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith("sshd"):
                out.append(pid)
                todo.extend(_children(pid))
        return out

    def freeze(self) -> None:
        """A hung host: SIGSTOP its sshd processes (the TCP port still accepts; nothing answers)."""
        for pid in self.sshd_pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self.sshd_pids():
            os.kill(pid, signal.SIGCONT)

    def rotate_host_key(self) -> None:
        """Give this host a new host key (known_hosts now holds a stale one); restart if running."""
        running = self.pid is not None
        if running:
            self.stop()
        _keygen(self.host_key, f"{self.name}-hostkey-rotated")
        if running:
            self.start()
            self.wait_ready()


def _children(pid: int) -> list[int]:
    try:
        text = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


class Cluster:
    """N sshd hosts under `root`; `inventory` is the generated inventory file."""

    def __init__(self, root: pathlib.Path | str, n: int, venv: pathlib.Path | str = ROOT / ".venv",
                 data: str = "data/digits", plain_login: bool = False):
        self.root = pathlib.Path(root).resolve()
        self.data = data  # paths.data: relative = inside each host's workdir
        self.root.mkdir(parents=True, exist_ok=True)
        self.venv = pathlib.Path(venv).resolve()
        self.client_key = self.root / "id_ed25519"
        self.authorized_keys = self.root / "authorized_keys"
        self.known_hosts = self.root / "known_hosts"
        self.inventory = self.root / "inventory.yml"
        self.hosts = [SshHost(self.root, i, plain_login=plain_login) for i in range(n)]

    def up(self, detach: bool = False) -> "Cluster":
        if not self.client_key.exists():
            _keygen(self.client_key, "mae-launch-test-client")
        self.authorized_keys.write_text(pathlib.Path(str(self.client_key) + ".pub").read_text())
        for host in self.hosts:
            host.prepare(self.authorized_keys)
        self.write_known_hosts()
        try:
            for host in self.hosts:
                host.start(detach=detach)
            for host in self.hosts:
                host.wait_ready()
        except BaseException:
            self.down()
            raise
        self.write_inventory()
        return self

    def down(self) -> None:
        for host in self.hosts:
            host.stop()

    def write_known_hosts(self, hosts: list[SshHost] | None = None) -> None:
        hosts = self.hosts if hosts is None else hosts
        self.known_hosts.write_text("".join(h.known_hosts_line() for h in hosts))

    def inventory_data(self, **overrides) -> dict:
        data = {
            "name": "loopback",
            "launcher": "torchrun",
            "ssh": {"user": "root", "identity_file": str(self.client_key),
                    "known_hosts": str(self.known_hosts), "host_key_policy": "strict",
                    "connect_timeout": 5},
            "hosts": [{"name": h.name, "address": h.address, "port": h.port,
                       "workdir": str(h.workdir), "slots": 1} for h in self.hosts],
            "network": {"interface": "lo", "master_port": _free_port(self.hosts[0].address)},
            "env": {"OMP_NUM_THREADS": 1},
            "paths": {"venv": str(self.venv), "data": self.data, "output": "output"},
            "jobs": {
                "pretrain": {"config": "digits_pretrain", "nproc_per_node": 1},
                "finetune": {"config": "digits_finetune", "nproc_per_node": 1,
                             "consumes": "pretrain"},
                "validate": {"config": "digits_finetune", "nproc_per_node": 1,
                             "consumes": "finetune"},
            },
        }
        for key, value in overrides.items():
            data[key] = value
        return data

    def write_inventory(self, path: pathlib.Path | None = None, **overrides) -> pathlib.Path:
        path = path or self.inventory
        path.write_text(yaml.safe_dump(self.inventory_data(**overrides), sort_keys=False))
        return path

    def state(self) -> dict:
        return {"root": str(self.root), "inventory": str(self.inventory),
                "hosts": [{"name": h.name, "address": h.address, "port": h.port,
                           "pid": h.pid, "config": str(h.config)} for h in self.hosts]}


def _cluster_down(root: pathlib.Path, quiet: bool = False) -> int:
    """Stop the cluster recorded under `root`; `quiet`: say nothing when there is none (before `up`)."""
    state_file = root / "cluster.json"
    if not state_file.exists():
        if not quiet:
            print(f"no cluster recorded in {state_file}")
        return 0
    state = json.loads(state_file.read_text())
    for h in state["hosts"]:
        pid = h.get("pid")
        if not pid or not _alive(pid):
            continue
        try:  # only a pid that is still the sshd we started, with our config
            cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"sshd" not in cmdline or h["config"].encode() not in cmdline:
            continue
        for child in _children(pid):
            os.kill(child, signal.SIGTERM)
        os.kill(pid, signal.SIGTERM)
        print(f"stopped sshd for {h['name']} (pid {pid})")
    state_file.unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="loopback sshd cluster for mae-launch")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", default=str(ROOT / ".cluster"))
    parser.add_argument("-n", type=int, default=4)
    args = parser.parse_args(argv)
    root = pathlib.Path(args.dir).resolve()
    if args.action == "down":
        return _cluster_down(root)
    _cluster_down(root, quiet=True)  # a cluster left running under this folder
    # one dataset for every loopback host, like the one venv (make cluster-up creates it)
    cluster = Cluster(root, args.n, data=str(ROOT / "data" / "digits")).up(detach=True)
    (root / "cluster.json").write_text(json.dumps(cluster.state(), indent=1))
    for h in cluster.hosts:
        print(f"{h.name}: root@{h.address} -p {h.port}  workdir {h.workdir}")
    print(f"inventory: {cluster.inventory}")
    print(f"try: mae-launch check --inventory {cluster.inventory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
