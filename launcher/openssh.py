"""OpenSSH targets that share one connection per host (ControlMaster), for bulk work like deploy.

A `Multiplexer` owns a private directory (mode 0700) for the control sockets; each `OpenSshTarget`
runs its scripts (`ssh ... bash -s`, the script on stdin) and its rsync transfers through the one
master connection the first command opened, so a host pays one SSH handshake for a probe, a sync and a
build. The ssh options are exactly those of rsync's remote shell (launcher/ssh.py): the same host-key
policy, known_hosts, identity, port, jump hosts and timeouts. Closing the multiplexer ends every master.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
import tempfile

from launcher import remote
from launcher.errors import UserError
from launcher.paths import HostPath
from launcher.ssh import rsync_shell, rsync_spec

PERSIST_S = 60   # a master left idle this long ends by itself (a crashed launcher leaves nothing behind)


class Multiplexer:
    """Control sockets for a group of OpenSshTargets; `with Multiplexer() as mux:`."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mael-")   # short: socket paths are limited to ~100 bytes
        self.targets: list = []

    def target(self, host) -> remote.Target:
        """An OpenSshTarget for an SSH host; the usual local target for `connection: local`."""
        if host.connection == "local":
            return remote.target(host)
        t = OpenSshTarget(host, self)
        self.targets.append(t)
        return t

    def close(self) -> None:
        for t in self.targets:
            t.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Multiplexer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _failure(name: str, stderr: str) -> remote.RemoteError:
    low = stderr.lower()
    if "host key verification failed" in low or "remote host identification has changed" in low:
        return remote.RemoteError(name, "host-key", "host key verification failed (ssh)", remote.tail(stderr))
    if "permission denied" in low:
        return remote.RemoteError(name, "auth", "authentication failed (ssh)", remote.tail(stderr))
    return remote.RemoteError(name, "unreachable", "cannot connect (ssh)", remote.tail(stderr))


class OpenSshTarget(remote.Target):
    def __init__(self, host, mux: Multiplexer):
        super().__init__(host)
        options = rsync_shell(host)
        shell = shlex.split(options[1])
        self.rsync_extra = options[2:]  # --timeout
        control = ["-o", "ControlMaster=auto", "-o", f"ControlPath={mux.dir}/%C",
                   "-o", f"ControlPersist={PERSIST_S}"]
        self.ssh = shell[:1] + control + shell[1:]
        self.address = rsync_spec(host, "").rstrip(":")

    def rsync_args(self) -> list[str]:
        return ["-e", shlex.join(self.ssh), *self.rsync_extra]

    def remote_path(self, path) -> str:
        text = str(path)
        trailing = "/" if text.endswith("/") and len(text) > 1 else ""
        return f"{self.address}:{HostPath(text.rstrip('/') or '/').on_host()}{trailing}"

    def run(self, script, timeout=None, check=False):
        # stderr goes to a file: a master that goes to the background keeps it open, and a pipe
        # would then never reach end-of-file
        with tempfile.TemporaryFile() as err:
            try:
                p = subprocess.run([*self.ssh, self.address, "bash -s"], input=script.encode(),
                                   stdout=subprocess.PIPE, stderr=err, timeout=timeout)
            except subprocess.TimeoutExpired as e:
                raise remote.RemoteError(self.name, "timeout", f"no answer within {timeout:g} s") from e
            except FileNotFoundError:
                raise UserError("ssh is not installed on this machine; install it "
                                "(Debian/Ubuntu: apt-get install openssh-client)") from None
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        if p.returncode == 255:
            raise _failure(self.name, stderr)
        return self._checked(remote.Completed(p.returncode, p.stdout.decode(errors="replace"), stderr), check)

    def close(self) -> None:
        try:
            subprocess.run([*self.ssh, "-O", "exit", self.address], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            pass  # the master ends by itself after PERSIST_S seconds
