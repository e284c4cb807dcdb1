"""OpenSSH and paramiko settings for one host: the Fabric Connection (host-key policy forced on
every hop, through every hop of `proxy_jump`) and the remote shell rsync runs (`-e`), built from the
same inventory values.

Every wait is bounded by the host's `connect_timeout` (default 10 s): the TCP connect, the SSH banner,
authentication and opening a channel (paramiko), OpenSSH's ConnectTimeout; a connected host gets a
keepalive every connect_timeout/3 s and is given up after ALIVE_COUNT unanswered ones; rsync stops
after `rsync_io_timeout` seconds without data.
"""
from __future__ import annotations

import logging
import pathlib
from typing import TYPE_CHECKING, Any

from launcher import addresses
from launcher.paths import known_hosts_path
from launcher.render import render_template

if TYPE_CHECKING:
    from fabric import Connection
# paramiko and Fabric (a third of a second to import) are imported by the functions that make a
# paramiko connection, so commands that never make one (deploy, over OpenSSH) do not load them

DEFAULT_CONNECT_TIMEOUT = 10.0
ALIVE_COUNT = 3  # keepalives unanswered before a connection is given up (ServerAliveCountMax)
# paramiko logs (with tracebacks, e.g. "Error reading SSH protocol banner") what mae-launch already
# reports as one sentence per host: keep it off the terminal
_paramiko_log = logging.getLogger("paramiko")
_paramiko_log.addHandler(logging.NullHandler())
_paramiko_log.propagate = False


def connect_timeout(host) -> float:
    return float(host.connect_timeout or DEFAULT_CONNECT_TIMEOUT)


def alive_interval(host) -> int:
    """Seconds between keepalives: a silent connection is given up after about connect_timeout."""
    return max(1, int(round(connect_timeout(host) / ALIVE_COUNT)))


def rsync_io_timeout(host) -> int:
    """rsync --timeout: seconds without any data before rsync gives up on a host."""
    return int(connect_timeout(host)) + 10


def _connection(address, user, port, host, gateway) -> Connection:
    from fabric import Config, Connection

    timeout = connect_timeout(host)
    connect_kwargs: dict[str, Any] = {"banner_timeout": timeout, "auth_timeout": timeout,
                                      "channel_timeout": timeout}
    if host.identity_file:
        connect_kwargs["key_filename"] = [str(pathlib.Path(host.identity_file).expanduser())]
    kwargs: dict[str, Any] = {}
    if user:
        kwargs["user"] = user
    if port:
        kwargs["port"] = int(port)
    # Config() loads ~/.ssh/config: it is honoured for values the inventory leaves unset
    return Connection(address, config=Config(), connect_timeout=int(max(1, timeout)),
                      connect_kwargs=connect_kwargs, gateway=gateway, **kwargs)


def ssh_connection(host) -> Connection:
    """A Fabric Connection for `host`, through every hop of its proxy_jump, host-key policy applied."""
    from fabric import Connection

    from launcher.knownhosts import apply_policy

    gateway = None
    for hop in addresses.parse_jumps(host.proxy_jump) if host.proxy_jump else []:
        gateway = _connection(hop.host, hop.user or host.user, hop.port, host, gateway)
    conn = _connection(host.address, host.user, host.port, host, gateway)
    # every hop gets the policy, including jump hosts Fabric builds from ~/.ssh/config's ProxyJump
    # (Fabric's own default for a new Connection would be AutoAddPolicy)
    hop = conn
    while isinstance(hop, Connection):
        apply_policy(hop.client, host.host_key_policy or "strict", host.known_hosts)
        hop = hop.gateway
    return conn


def close_chain(conn: Connection) -> None:
    """Close a connection and every jump host connection under it."""
    from fabric import Connection

    hop = conn
    while isinstance(hop, Connection):
        try:
            hop.close()
        except Exception:
            pass
        hop = hop.gateway


def _pct(text: str) -> str:
    """A literal in a value ssh expands %-tokens in (ProxyCommand)."""
    return text.replace("%", "%%")


def proxy_command(host, common: dict) -> str | None:
    """The ProxyCommand reaching `host` through every hop of its proxy_jump (None without one)."""
    hops = addresses.parse_jumps(host.proxy_jump) if host.proxy_jump else []
    command = None
    for i, hop in enumerate(hops):
        nxt = hops[i + 1] if i + 1 < len(hops) else None
        dest = "%h:%p" if nxt is None else _pct(addresses.host_port(nxt.host, nxt.port or 22))
        # each ssh expands %-tokens of its ProxyCommand once: a nested one is escaped once more
        command = render_template("ssh_proxy_command.j2", user=hop.user or host.user, host=hop.host,
                                  port=hop.port, dest=dest, proxy_command=_pct(command) if command else None,
                                  **common).strip()
    return command


def rsync_shell(host) -> list[str]:
    """rsync's `-e` and `--timeout` options for `host`: OpenSSH with the same host-key policy and
    bounds as paramiko."""
    common = dict(strict=(host.host_key_policy or "strict") == "strict",
                  known_hosts=str(known_hosts_path(host.known_hosts)),
                  timeout=int(max(1, connect_timeout(host))), alive=alive_interval(host), alive_count=ALIVE_COUNT,
                  identity=(str(pathlib.Path(host.identity_file).expanduser())
                            if host.identity_file else None))
    proxy = proxy_command(host, {k: (_pct(v) if isinstance(v, str) else v) for k, v in common.items()})
    rsh = render_template("rsync_ssh.j2", port=host.port, jump=bool(proxy),
                          proxy_command=proxy, **common).strip()
    return ["-e", rsh, f"--timeout={rsync_io_timeout(host)}"]


def rsync_spec(host, path: str) -> str:
    """`[user@]address:path` for rsync; an IPv6 address is bracketed."""
    return addresses.remote_spec(host.user, host.address, path)


def connect_reason(error: BaseException | None, port) -> str:
    """Why a connection failed, in words: paramiko's `[Errno None] Unable to connect to port P on A`
    (NoValidConnectionsError: one OSError per address tried) becomes what the socket said."""
    import errno

    inner = list(getattr(error, "errors", {}).values()) or [error]
    codes = {getattr(e, "errno", None) for e in inner}
    if errno.ECONNREFUSED in codes:
        return f"connection refused on port {port} (is sshd running there, and on that port?)"
    if isinstance(error, TimeoutError) or codes & {errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH}:
        return f"no answer on port {port} ({getattr(inner[0], 'strerror', None) or 'timed out'})"
    words = [getattr(e, "strerror", None) or str(e) or type(e).__name__ for e in inner if e is not None]
    return "; ".join(dict.fromkeys(words)) or "no reason given"

