"""The transport: one `Target` per host, in the shape of Ray's command runner.

A Target runs a rendered bash script there (`run`, `run_template`: `bash -s`, the script on stdin)
and copies files to and from it (`rsync_up`, `rsync_down`): over SSH with Fabric/paramiko and
OpenSSH's rsync for `connection: ssh`, as local processes for `connection: local`, with the same
code path above this module. Host keys are checked against known_hosts (strict or accept-new; a
changed key is always refused). Only connection errors are retried.

`fan_out` runs one function per host on a thread pool with a concurrency cap and a timeout and
returns one `HostResult` per host. Tables and sentences about results live in launcher/report.py.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import os
import socket
import subprocess
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from launcher import addresses, sshconf
from launcher.chanread import ChannelReader
from launcher.errors import UserError
from launcher.keptshell import KeptShell, ShellGone
from launcher.paths import HostPath, known_hosts_path
from launcher.render import render_template
from launcher.ssh import (alive_interval, close_chain, connect_reason, connect_timeout, rsync_shell, rsync_spec,
                          ssh_connection)

if TYPE_CHECKING:
    from fabric import Connection
# paramiko is imported by the SshTarget methods that use it (see launcher/ssh.py)

DEFAULT_LIMIT = 32
CONNECT_RETRIES = 2
RSYNC_BASE = ["rsync", "-a", "--secluded-args"]


class RemoteError(Exception):
    """A host could not do what was asked. `kind`: unreachable | host-key | auth | timeout | failed."""

    def __init__(self, host: str, kind: str, message: str, tail: str = ""):
        super().__init__(f"{host}: {message}")
        self.host, self.kind, self.message, self.tail = host, kind, message, tail


@dataclasses.dataclass
class Completed:
    rc: int
    stdout: str
    stderr: str


def parse_kv(text: str) -> dict[str, str]:
    """`key=value` lines printed by a host script -> dict (other lines ignored)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and " " not in key:
            out[key] = value
    return out


def tail(text: str, n: int = 12) -> str:
    """The last `n` lines of `text`."""
    return "\n".join(text.rstrip().splitlines()[-n:])


def run_local(argv: list[str], timeout: float | None = None, package: str | None = None, **kwargs):
    """subprocess.run for a local tool (rsync, ssh); a missing tool is one sentence naming its package."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    except FileNotFoundError:
        raise UserError(f"{argv[0]} is not installed on this machine; install it "
                        f"(Debian/Ubuntu: apt-get install {package or argv[0]})") from None


def _rsync_error(name: str, rc: int, stderr: str, what: str) -> RemoteError:
    kind = "unreachable" if rc == 255 else "failed"
    msg = f"{what}: rsync could not connect" if kind == "unreachable" else f"{what}: rsync failed (exit {rc})"
    if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        kind, msg = "host-key", f"{what}: rsync refused, host key verification failed"
    return RemoteError(name, kind, msg, tail(stderr))


class Target:
    """One host: runs rendered scripts there and copies files to and from it."""

    def __init__(self, host):
        self.host = host
        self.name = host.name

    @property
    def is_local(self) -> bool:
        return self.host.connection == "local"

    def run(self, script: str, timeout: float | None = None, check: bool = False) -> Completed:
        raise NotImplementedError

    def run_template(self, template: str, timeout: float | None = None, check: bool = False,
                     **data) -> Completed:
        return self.run(render_template(template, **data), timeout=timeout, check=check)

    def run_kept(self, script: str, timeout: float, check: bool = False) -> Completed:
        """run(), for a command repeated often (a poll): an SSH host runs it in its kept shell."""
        return self.run(script, timeout=timeout, check=check)

    def remote_path(self, path) -> str:
        """How rsync names `path` (a HostPath or plain string) on this host."""
        raise NotImplementedError

    def rsync_args(self) -> list[str]:
        return []

    def rsync_up(self, source: str, dest, args: Iterable[str] = (), what: str = "copying",
                 timeout: float | None = None) -> None:
        """rsync local `source` to `dest` on this host (extra rsync `args` first)."""
        self._rsync([*RSYNC_BASE, *args, *self.rsync_args(), str(source), self.remote_path(dest)], what, timeout)

    def rsync_down(self, source, dest: str, args: Iterable[str] = (), what: str = "copying",
                   timeout: float | None = None) -> None:
        """rsync `source` on this host to local `dest`."""
        self._rsync([*RSYNC_BASE, *args, *self.rsync_args(), self.remote_path(source), str(dest)], what, timeout)

    def _rsync(self, argv: list[str], what: str, timeout: float | None) -> None:
        try:
            p = run_local(argv, timeout=timeout, package="rsync", stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise RemoteError(self.name, "timeout", f"{what}: rsync did not finish within {timeout:g} s") from e
        if p.returncode != 0:
            raise _rsync_error(self.name, p.returncode, p.stderr, what)

    def _checked(self, done: Completed, check: bool) -> Completed:
        if check and done.rc != 0:
            raise RemoteError(self.name, "failed", f"exit status {done.rc}",
                              tail(done.stderr or done.stdout))
        return done

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass


class LocalTarget(Target):
    def run(self, script, timeout=None, check=False):
        try:
            p = subprocess.run(["bash", "-s"], input=script, capture_output=True, text=True,
                               timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired as e:
            raise RemoteError(self.name, "timeout", f"no answer within {timeout:g} s") from e
        return self._checked(Completed(p.returncode, p.stdout, p.stderr), check)

    def remote_path(self, path) -> str:
        text = str(path)
        trailing = "/" if text.endswith("/") and len(text) > 1 else ""
        return os.path.expanduser(text).rstrip("/") + trailing if text.startswith("~") else text


class SshTarget(Target):
    def __init__(self, host):
        super().__init__(host)
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._shell: KeptShell | None = None       # launcher/keptshell.py, opened by the first run_kept
        self._shell_lock = threading.Lock()

    def connect(self) -> None:
        import paramiko

        from launcher.knownhosts import KnownHostsError, check_not_revoked

        with self._lock:
            if self._conn is not None and self._conn.is_connected:
                return
            real = sshconf.resolve(self.host)   # OpenSSH's view of the host (ssh -G): HostName, Port...
            where = addresses.host_port(real.address, real.port) if real.port else real.address
            if real.address != self.host.address:
                where = f"{where} ({self.host.address})"
            known = (real.known_hosts_files.split()[0] if real.known_hosts_files and not real.known_hosts
                     else known_hosts_path(real.known_hosts))
            last: Exception | None = None
            started = time.monotonic()
            for attempt in range(CONNECT_RETRIES + 1):
                conn = ssh_connection(self.host)
                try:
                    conn.open()
                    check_not_revoked(conn)
                    conn.transport.set_keepalive(alive_interval(self.host))
                    self._conn = conn
                    return
                except KnownHostsError as e:
                    close_chain(conn)
                    raise RemoteError(self.name, "host-key", str(e)) from e
                except paramiko.BadHostKeyException as e:
                    close_chain(conn)
                    raise RemoteError(self.name, "host-key",
                                      f"host key for {where} has CHANGED (does not match "
                                      f"{known}); refusing to connect — "
                                      "if the host was reinstalled, remove its old line from known_hosts") from e
                except paramiko.AuthenticationException as e:
                    close_chain(conn)
                    raise RemoteError(self.name, "auth", f"authentication failed for {where}: {e}") from e
                except paramiko.SSHException as e:
                    close_chain(conn)
                    if "not found in known_hosts" in str(e):
                        raise RemoteError(self.name, "host-key",
                                          f"host key for {where} is not in "
                                          f"{known} (host_key_policy strict); "
                                          "add it with ssh-keyscan after checking it, or use accept-new") from e
                    last = e
                except (OSError, EOFError, socket.timeout) as e:
                    close_chain(conn)
                    last = e
                # retry a quick failure (refused, reset); a host that let the timeout run out is not retried
                if attempt < CONNECT_RETRIES and time.monotonic() - started < connect_timeout(self.host) / 2:
                    time.sleep(0.3 * (attempt + 1))
                else:
                    break
            raise RemoteError(self.name, "unreachable", f"cannot connect to {where}: "
                              f"{connect_reason(last, self.host.port or 22)}")

    def run(self, script, timeout=None, check=False):
        import paramiko

        self.connect()
        try:
            chan = self._conn.client.get_transport().open_session(timeout=connect_timeout(self.host))
        except (paramiko.SSHException, OSError, EOFError) as e:
            self.close()
            raise RemoteError(self.name, "unreachable", f"connection lost: {e}") from e
        deadline = None if timeout is None else time.monotonic() + timeout
        reader = ChannelReader(chan)
        try:
            chan.settimeout(connect_timeout(self.host))
            chan.exec_command("bash -s")
            chan.sendall(script.encode())
            chan.shutdown_write()
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    raise RemoteError(self.name, "timeout", f"no answer within {timeout:g} s",
                                      tail(reader.err.decode(errors="replace")))
                reader.pump(0.2)
                if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
                    break
                if chan.closed or not self._conn.transport.is_active():
                    if chan.exit_status_ready():
                        continue
                    raise RemoteError(self.name, "unreachable", "connection lost")
            rc = chan.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as e:
            self.close()
            raise RemoteError(self.name, "unreachable", f"connection lost: {e}") from e
        finally:
            chan.close()
        return self._checked(Completed(rc, reader.out.decode(errors="replace"), reader.err.decode(errors="replace")),
                             check)

    def run_kept(self, script, timeout, check=False):
        import paramiko

        if not self._shell_lock.acquire(blocking=False):  # in use (a poll still running): a command of its own
            return self.run(script, timeout=timeout, check=check)
        try:
            self.connect()
            try:
                if self._shell is None:
                    self._shell = KeptShell(self._conn.client.get_transport().open_session(
                        timeout=connect_timeout(self.host)))
                rc, out, err = self._shell.call(script, timeout)
            except ShellGone as e:
                self._drop_shell()
                raise RemoteError(self.name, "timeout", f"no answer within {timeout:g} s ({e})") from e
            except (paramiko.SSHException, OSError, EOFError) as e:
                self.close()
                raise RemoteError(self.name, "unreachable", f"connection lost: {e}") from e
        finally:
            self._shell_lock.release()
        return self._checked(Completed(rc, out, err), check)

    def _drop_shell(self) -> None:
        shell, self._shell = self._shell, None
        if shell is not None:
            shell.close()

    def remote_path(self, path) -> str:
        text = str(path)
        trailing = "/" if text.endswith("/") and len(text) > 1 else ""
        return rsync_spec(self.host, HostPath(text.rstrip("/") or "/").on_host() + trailing)

    def rsync_args(self) -> list[str]:
        return rsync_shell(self.host)

    def close(self) -> None:
        self._drop_shell()
        conn, self._conn = self._conn, None
        if conn is not None:
            close_chain(conn)


def target(host) -> Target:
    return LocalTarget(host) if host.connection == "local" else SshTarget(host)


def targets(hosts: Iterable) -> list[Target]:
    return [target(h) for h in hosts]


def close_all(ts: Iterable[Target]) -> None:
    for t in ts:
        t.close()


# ---------------------------------------------------------------- fan-out

@dataclasses.dataclass
class HostResult:
    host: str
    ok: bool
    value: Any = None
    error: str = ""
    kind: str = ""
    tail: str = ""
    seconds: float = 0.0


def fan_out(ts: list[Target], fn: Callable[[Target], Any], *, limit: int = DEFAULT_LIMIT,
            timeout: float | None = None) -> list[HostResult]:
    """Run fn(target) for every target, at most `limit` at once; one result per target, in order.

    `timeout` bounds each host from the moment its work starts (a host waiting for a free slot is not
    charged): a host still busy after it is reported as timed out and its connection closed. A
    UserError (bad local set-up, e.g. rsync missing here) is raised, not charged to a host."""
    results: dict[str, HostResult] = {}
    started: dict[str, float] = {}

    def one(t: Target) -> HostResult:
        start = started[t.name] = time.monotonic()
        try:
            value = fn(t)
            return HostResult(t.name, True, value, seconds=time.monotonic() - start)
        except RemoteError as e:
            return HostResult(t.name, False, None, e.message, e.kind, e.tail, time.monotonic() - start)
        except UserError:
            raise
        except Exception as e:  # a bug or an unexpected failure on one host must not hide the others
            return HostResult(t.name, False, None, f"{type(e).__name__}: {e}", "failed", "",
                              time.monotonic() - start)

    pool = cf.ThreadPoolExecutor(max_workers=max(1, min(limit, len(ts))), thread_name_prefix="host")
    try:
        pending = {pool.submit(one, t): t for t in ts}
        while pending:
            done, _ = cf.wait(pending, timeout=0.1, return_when=cf.FIRST_COMPLETED)
            for f in done:
                r = f.result()
                results[r.host] = r
                del pending[f]
            now = time.monotonic()
            for f, t in list(pending.items()):
                if timeout is not None and t.name in started and now - started[t.name] > timeout:
                    del pending[f]
                    t.close()
                    results[t.name] = HostResult(t.name, False, None, f"no answer within {timeout:g} s",
                                                 "timeout", seconds=now - started[t.name])
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [results[t.name] for t in ts]
