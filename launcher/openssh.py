"""OpenSSH targets that share one connection per host (ControlMaster), for bulk work like deploy.

Each `OpenSshTarget` runs its scripts (`ssh ... bash -s`, the script on stdin) and its rsync transfers
through one master connection per host, so a host pays one SSH handshake for a probe, a sync and a
build. The ssh options are exactly those of rsync's remote shell (launcher/ssh.py): the same host-key
policy, known_hosts, identity, port, jump hosts and timeouts.

A master is kept for the next command for the host's `control_persist` seconds of idleness (inventory
key, default 60; 0: closed when the command ends), as Ansible does: an edit-and-redeploy loop then
pays no handshake. Kept masters live in a directory of the login user's own (mode 0700, checked;
under $XDG_RUNTIME_DIR or the temporary directory), one socket per host and set of ssh options, so a
changed identity, known_hosts or jump host opens a new connection. A master whose host stops
answering ends after the keepalives (connect_timeout); one left idle ends by itself.
"""
from __future__ import annotations

import hashlib
import math
import os
import shlex
import shutil
import stat
import subprocess
import tempfile

from launcher import addresses, remote, sshconf
from launcher.errors import UserError
from launcher.paths import HostPath
from launcher.ssh import rsync_shell, rsync_spec

PERSIST_S = 60   # a master not kept still ends by itself after this idle time, should `close` be missed
MAX_DIR = 36     # a socket path has at most 107 bytes: dir + /12-hex + -%C (41) + ssh's 17-byte temporary suffix


def kept_dir() -> str | None:
    """The login user's directory for masters kept between commands, or None when it cannot be trusted
    (not a directory of this user's, open to others, or a path too long for a socket)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = os.path.join(base, f"mae-launch-{os.getuid()}")
    if len(path) > MAX_DIR:
        return None
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path


class Multiplexer:
    """Control sockets for a group of OpenSshTargets; `with Multiplexer() as mux:`. Masters of hosts with
    `control_persist` > 0 are left running (in `kept`) for the next command; the others are closed."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mael-", dir="/tmp")   # short: see MAX_DIR
        self.kept = kept_dir()
        self.targets: list = []

    def target(self, host) -> remote.Target:
        """An OpenSshTarget for an SSH host; the usual local target for `connection: local`."""
        if host.connection == "local":
            return remote.target(host)
        t = OpenSshTarget(host, self)
        self.targets.append(t)
        return t

    def control(self, host, ssh: list[str]) -> tuple[list[str], bool]:
        """ssh options that put this host's connection on a master, and whether that master is kept
        for later commands (or is this command's own)."""
        kept = bool(self.kept) and host.control_persist > 0
        if kept:
            key = hashlib.sha256("\0".join(ssh).encode()).hexdigest()[:12]
            path, persist = f"{self.kept}/{key}-%C", math.ceil(host.control_persist)
        else:
            path, persist = f"{self.dir}/%C", PERSIST_S
        return ["-o", "ControlMaster=auto", "-o", f"ControlPath={path}", "-o", f"ControlPersist={persist}"], kept

    def close(self) -> None:
        for t in self.targets:
            if not t.kept:
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
        real = sshconf.resolve(host)   # OpenSSH's view of the host (ssh -G)
        self.address = addresses.destination(real.user, real.address)  # for ssh: never bracketed
        self.spec = rsync_spec(host, "").rstrip(":")                     # for rsync: [v6] bracketed
        control, self.kept = mux.control(host, [*shell, self.address])
        self.ssh = shell[:1] + control + shell[1:]

    def rsync_args(self) -> list[str]:
        return ["-e", shlex.join(self.ssh), *self.rsync_extra]

    def remote_path(self, path) -> str:
        text = str(path)
        trailing = "/" if text.endswith("/") and len(text) > 1 else ""
        return f"{self.spec}:{HostPath(text.rstrip('/') or '/').on_host()}{trailing}"

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
