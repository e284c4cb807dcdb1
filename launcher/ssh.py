"""OpenSSH and paramiko settings for one host: the Fabric Connection (host-key policy forced on
every hop, through every hop of `proxy_jump`) and the remote shell rsync runs (`-e`), built from the
same inventory values.

Every wait is bounded by the host's `connect_timeout` (default 10 s): the TCP connect, the SSH banner,
authentication and opening a channel (paramiko), OpenSSH's ConnectTimeout; a connected host gets a
keepalive every connect_timeout/3 s and is given up after ALIVE_COUNT unanswered ones; rsync stops
after `rsync_io_timeout` seconds without data.
"""
from __future__ import annotations

import dataclasses
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
    """Seconds between keepalives: the ssh config's ServerAliveInterval, else a silent connection is
    given up after about connect_timeout."""
    return host.alive_interval or max(1, int(round(connect_timeout(host) / ALIVE_COUNT)))


def rsync_io_timeout(host) -> int:
    """rsync --timeout: seconds without any data before rsync gives up on a host."""
    return int(connect_timeout(host)) + 10


def _connection(host, gateway) -> Connection:
    """A Fabric Connection to a resolved `host` (launcher/sshconf.py): the ssh config was read by
    OpenSSH already, so Fabric reads none (it would look the real HostName up, not the alias)."""
    import paramiko
    from fabric import Config, Connection

    timeout = connect_timeout(host)
    connect_kwargs: dict[str, Any] = {"banner_timeout": timeout, "auth_timeout": timeout,
                                      "channel_timeout": timeout}
    keys = [str(pathlib.Path(host.identity_file).expanduser())] if host.identity_file else host.identity_files.splitlines()
    if keys:
        connect_kwargs["key_filename"] = keys
    if host.identities_from_config and not host.identity_file:
        connect_kwargs["look_for_keys"] = False   # IdentityFile in the config: those keys (and the agent)
    kwargs: dict[str, Any] = {}
    if host.user:
        kwargs["user"] = host.user
    if host.port:
        kwargs["port"] = int(host.port)
    if gateway is None and host.proxy_command:
        gateway = _expand_tokens(host.proxy_command, host)
    return Connection(host.address, config=Config(ssh_config=paramiko.SSHConfig()),
                      connect_timeout=int(max(1, timeout)), connect_kwargs=connect_kwargs,
                      gateway=gateway if gateway is not None else False, **kwargs)


def _expand_tokens(command: str, host) -> str:
    """OpenSSH's %h %p %r %n %% in a ProxyCommand from the ssh config."""
    table = {"h": host.address, "p": str(host.port or 22), "r": host.user or "", "n": host.name, "%": "%"}
    out, i = [], 0
    while i < len(command):
        if command[i] == "%" and i + 1 < len(command) and command[i + 1] in table:
            out.append(table[command[i + 1]])
            i += 2
        else:
            out.append(command[i])
            i += 1
    return "".join(out)


def hops(host) -> list:
    """Every jump host of `host`'s proxy_jump, first to last, each resolved as OpenSSH resolves it."""
    from launcher import sshconf

    out = []
    for hop in addresses.parse_jumps(host.proxy_jump) if host.proxy_jump else []:
        base = dataclasses.replace(host, name=hop.host, address=hop.host, port=hop.port, user=hop.user or host.user,
                                   proxy_jump=None, identity_file=host.identity_file, resolved_by="",
                                   proxy_command=None, identity_files="", known_hosts_files=host.known_hosts_files)
        out.append(sshconf.resolve(base))
    return out


def ssh_connection(host) -> Connection:
    """A Fabric Connection for `host`, through every hop of its proxy_jump, host-key policy applied."""
    from fabric import Connection

    from launcher import sshconf
    from launcher.knownhosts import apply_policy

    host = sshconf.resolve(host)
    gateway = None
    for hop in hops(host):
        gateway = _connection(hop, gateway)
    conn = _connection(host, gateway)
    # every hop gets the policy (Fabric's own default for a new Connection would be AutoAddPolicy)
    hop = conn
    while isinstance(hop, Connection):
        apply_policy(hop.client, host.host_key_policy or "strict", host.known_hosts, tuple(host.known_hosts_files.split()))
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


def known_hosts_value(host) -> str:
    """UserKnownHostsFile: the inventory's file, else the ssh config's files, else the default."""
    if not host.known_hosts and host.known_hosts_files:
        return host.known_hosts_files
    return str(known_hosts_path(host.known_hosts))


def proxy_command(host, common: dict) -> str | None:
    """The ProxyCommand reaching `host` through every hop of its proxy_jump (None without one), or the
    ssh config's own ProxyCommand."""
    hops_ = hops(host)
    if not hops_ and host.proxy_command:
        return host.proxy_command
    command = None
    for i, hop in enumerate(hops_):
        nxt = hops_[i + 1] if i + 1 < len(hops_) else None
        dest = "%h:%p" if nxt is None else _pct(addresses.host_port(nxt.address, nxt.port or 22))
        # each ssh expands %-tokens of its ProxyCommand once: a nested one is escaped once more
        command = render_template("ssh_proxy_command.j2", user=hop.user, host=hop.address,
                                  port=hop.port, dest=dest, proxy_command=_pct(command) if command else None,
                                  **common).strip()
    return command


def rsync_shell(host) -> list[str]:
    """rsync's `-e` and `--timeout` options for `host`: OpenSSH with the same host-key policy and
    bounds as paramiko, and the settings OpenSSH resolved for it (launcher/sshconf.py)."""
    from launcher import sshconf

    host = sshconf.resolve(host)
    identities = ([str(pathlib.Path(host.identity_file).expanduser())] if host.identity_file
                  else host.identity_files.splitlines() if host.identities_from_config else [])
    common = dict(strict=(host.host_key_policy or "strict") == "strict", known_hosts=known_hosts_value(host),
                  timeout=int(max(1, connect_timeout(host))), alive=alive_interval(host), alive_count=ALIVE_COUNT,
                  identities=identities, config=host.ssh_config, agent=host.identity_agent,
                  host_key_alias=None)
    proxy = proxy_command(host, {k: (_pct(v) if isinstance(v, str) else v) for k, v in common.items()})
    rsh = render_template("rsync_ssh.j2", port=host.port, jump=bool(proxy),
                          proxy_command=proxy, **dict(common, host_key_alias=host.host_key_alias)).strip()
    return ["-e", rsh, f"--timeout={rsync_io_timeout(host)}"]


def rsync_spec(host, path: str) -> str:
    """`[user@]address:path` for rsync; an IPv6 address is bracketed."""
    from launcher import sshconf

    host = sshconf.resolve(host)
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

