"""Connections to hosts and the fan-out over them.

Every host is a `Target` that runs a rendered bash script (`bash -s`, script on stdin): over SSH
with Fabric/paramiko for `connection: ssh`, as a local subprocess for `connection: local` — the
same code path above this module. Host keys are checked against known_hosts (strict or
accept-new; a changed key is always refused). Only connection errors are retried.

`fan_out` runs one function per host on a thread pool with a concurrency cap and a per-phase
timeout, and returns one `HostResult` per host; `summary_table` / `exit_status` reduce them.
"""
from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import pathlib
import select
import socket
import subprocess
import threading
import time
from typing import Any, Callable, Iterable

import paramiko
from fabric import Config, Connection
from rich.markup import escape
from rich.table import Table

from launcher.knownhosts import apply_policy, known_hosts_path
from launcher.render import render_template

DEFAULT_LIMIT = 32
CONNECT_RETRIES = 2


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
    """`key=value` lines printed by a host script → dict (other lines ignored)."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and " " not in key:
            out[key] = value
    return out


def _tail(text: str, n: int = 12) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


class Target:
    """One host: runs rendered scripts there."""

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

    def _checked(self, done: Completed, check: bool) -> Completed:
        if check and done.rc != 0:
            raise RemoteError(self.name, "failed", f"exit status {done.rc}",
                              _tail(done.stderr or done.stdout))
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


def _split_jump(spec: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (the first hop of a ProxyJump list) → (user, host, port)."""
    first = spec.split(",")[0]
    user, _, rest = first.rpartition("@")
    host, port = rest, None
    if rest.startswith("["):  # [v6]:port
        host, _, p = rest[1:].partition("]")
        port = int(p[1:]) if p.startswith(":") else None
    elif rest.count(":") == 1:
        host, p = rest.split(":")
        port = int(p)
    return (user or None), host, port


def ssh_connection(host, jump: str | None = None) -> Connection:
    """A Fabric Connection for `host` (or for its jump host), host-key policy applied."""
    config = Config()  # loads ~/.ssh/config (ssh_config is honoured for unset values)
    kwargs: dict[str, Any] = {}
    if jump is None:
        address, user, port = host.address, host.user, host.port
        gateway = ssh_connection(host, jump=host.proxy_jump) if host.proxy_jump else None
    else:
        user, address, port = _split_jump(jump)
        user = user or host.user
        gateway = None
    connect_kwargs: dict[str, Any] = {"banner_timeout": 30, "auth_timeout": 30}
    if host.identity_file:
        connect_kwargs["key_filename"] = [str(pathlib.Path(host.identity_file).expanduser())]
    if user:
        kwargs["user"] = user
    if port:
        kwargs["port"] = int(port)
    timeout = host.connect_timeout or 10
    conn = Connection(address, config=config, connect_timeout=int(max(1, timeout)),
                      connect_kwargs=connect_kwargs, gateway=gateway if gateway else None, **kwargs)
    # every hop gets the policy, including jump hosts Fabric builds from ~/.ssh/config's ProxyJump
    # (Fabric's own default for a new Connection would be AutoAddPolicy)
    hop = conn
    while isinstance(hop, Connection):
        apply_policy(hop.client, host.host_key_policy or "strict", host.known_hosts)
        hop = hop.gateway
    return conn


class SshTarget(Target):
    def __init__(self, host):
        super().__init__(host)
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def connect(self) -> None:
        with self._lock:
            if self._conn is not None and self._conn.is_connected:
                return
            where = f"{self.host.address}" + (f":{self.host.port}" if self.host.port else "")
            last: Exception | None = None
            for attempt in range(CONNECT_RETRIES + 1):
                conn = ssh_connection(self.host)
                try:
                    conn.open()
                    self._conn = conn
                    return
                except paramiko.BadHostKeyException as e:
                    conn.close()
                    raise RemoteError(self.name, "host-key",
                                      f"host key for {where} has CHANGED (does not match "
                                      f"{known_hosts_path(self.host.known_hosts)}); refusing to connect — "
                                      "if the host was reinstalled, remove its old line from known_hosts") from e
                except paramiko.AuthenticationException as e:
                    conn.close()
                    raise RemoteError(self.name, "auth", f"authentication failed for {where}: {e}") from e
                except paramiko.SSHException as e:
                    conn.close()
                    if "not found in known_hosts" in str(e):
                        raise RemoteError(self.name, "host-key",
                                          f"host key for {where} is not in "
                                          f"{known_hosts_path(self.host.known_hosts)} (host_key_policy strict); "
                                          "add it with ssh-keyscan after checking it, or use accept-new") from e
                    last = e
                except (OSError, EOFError, socket.timeout) as e:
                    conn.close()
                    last = e
                if attempt < CONNECT_RETRIES:
                    time.sleep(0.3 * (attempt + 1))
            raise RemoteError(self.name, "unreachable", f"cannot connect to {where}: {last}")

    def run(self, script, timeout=None, check=False):
        self.connect()
        try:
            chan = self._conn.client.get_transport().open_session(timeout=10)
        except (paramiko.SSHException, OSError, EOFError) as e:
            self.close()
            raise RemoteError(self.name, "unreachable", f"connection lost: {e}") from e
        deadline = None if timeout is None else time.monotonic() + timeout
        out, err = bytearray(), bytearray()
        try:
            chan.settimeout(0.2)
            chan.exec_command("bash -s")
            chan.sendall(script.encode())
            chan.shutdown_write()
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    raise RemoteError(self.name, "timeout", f"no answer within {timeout:g} s",
                                      _tail(err.decode(errors="replace")))
                select.select([chan], [], [], 0.2)
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
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
        return self._checked(Completed(rc, out.decode(errors="replace"), err.decode(errors="replace")), check)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
            if conn.gateway and not isinstance(conn.gateway, str):
                conn.gateway.close()


def target(host) -> Target:
    return LocalTarget(host) if host.connection == "local" else SshTarget(host)


def targets(hosts: Iterable) -> list[Target]:
    return [target(h) for h in hosts]


def close_all(ts: Iterable[Target]) -> None:
    for t in ts:
        t.close()


def rsync_remote(host, path: str) -> tuple[list[str], str]:
    """rsync options + the remote spelling of `path` on `host`, same host-key policy as paramiko."""
    if host.connection == "local":
        return [], path
    common = dict(strict=(host.host_key_policy or "strict") == "strict",
                  known_hosts=str(known_hosts_path(host.known_hosts)),
                  timeout=int(host.connect_timeout or 10),
                  identity=(str(pathlib.Path(host.identity_file).expanduser())
                            if host.identity_file else None))
    proxy = None
    if host.proxy_jump:
        juser, jhost, jport = _split_jump(host.proxy_jump)
        proxy = render_template("ssh_proxy_command.j2", user=juser or host.user, host=jhost,
                                port=jport, **common).strip()
    rsh = render_template("rsync_ssh.j2", port=host.port, jump=bool(proxy),
                          proxy_command=proxy, **common).strip()
    dest = f"{host.user + '@' if host.user else ''}{host.address}:{path}"
    return ["-e", rsh], dest


# ---------------------------------------------------------------- fan-out and results

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

    A host still busy after `timeout` seconds is reported as timed out (its connection closed)."""
    results: dict[str, HostResult] = {}

    def one(t: Target) -> HostResult:
        start = time.monotonic()
        try:
            value = fn(t)
            return HostResult(t.name, True, value, seconds=time.monotonic() - start)
        except RemoteError as e:
            return HostResult(t.name, False, None, e.message, e.kind, e.tail, time.monotonic() - start)
        except Exception as e:  # a bug or an unexpected failure on one host must not hide the others
            return HostResult(t.name, False, None, f"{type(e).__name__}: {e}", "failed", "",
                              time.monotonic() - start)

    pool = cf.ThreadPoolExecutor(max_workers=max(1, min(limit, len(ts))), thread_name_prefix="host")
    try:
        futures = {pool.submit(one, t): t for t in ts}
        done, pending = cf.wait(futures, timeout=timeout)
        for f in done:
            r = f.result()
            results[r.host] = r
        for f in pending:
            t = futures[f]
            f.cancel()
            t.close()
            results[t.name] = HostResult(t.name, False, None, f"no answer within {timeout:g} s", "timeout")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [results[t.name] for t in ts]


def exit_status(results: list[HostResult]) -> int:
    return 0 if all(r.ok for r in results) else 1


def summary_table(title: str, results: list[HostResult], describe: Callable[[HostResult], str] | None = None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("host", style="bold")
    table.add_column("result")
    table.add_column("seconds", justify="right")
    table.add_column("detail", overflow="fold")
    for r in results:
        state = "[green]ok[/]" if r.ok else f"[red]{r.kind or 'failed'}[/]"
        detail = (describe(r) if describe else str(r.value or "")) if r.ok else r.error
        if not r.ok and r.tail:
            detail += "\n" + r.tail
        table.add_row(r.host, state, f"{r.seconds:.1f}", escape(detail))
    return table


def failure_message(what: str, results: list[HostResult]) -> str:
    bad = [r for r in results if not r.ok]
    lines = [f"{what} failed on {len(bad)} of {len(results)} host(s): " + ", ".join(r.host for r in bad)]
    for r in bad:
        lines.append(f"--- {r.host}: {r.error}")
        if r.tail:
            lines.extend("    " + line for line in r.tail.splitlines())
    return "\n".join(lines)
