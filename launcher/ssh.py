"""OpenSSH and paramiko settings for one host: the Fabric Connection (host-key policy forced on
every hop) and the remote shell rsync runs (`-e`), built from the same inventory values.
"""
from __future__ import annotations

import pathlib
from typing import Any

from fabric import Config, Connection

from launcher.knownhosts import apply_policy, known_hosts_path
from launcher.render import render_template


def split_jump(spec: str) -> tuple[str | None, str, int | None]:
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
        user, address, port = split_jump(jump)
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


def rsync_shell(host) -> list[str]:
    """rsync's `-e` option for `host`: OpenSSH with the same host-key policy as paramiko."""
    common = dict(strict=(host.host_key_policy or "strict") == "strict",
                  known_hosts=str(known_hosts_path(host.known_hosts)),
                  timeout=int(host.connect_timeout or 10),
                  identity=(str(pathlib.Path(host.identity_file).expanduser())
                            if host.identity_file else None))
    proxy = None
    if host.proxy_jump:
        juser, jhost, jport = split_jump(host.proxy_jump)
        proxy = render_template("ssh_proxy_command.j2", user=juser or host.user, host=jhost,
                                port=jport, **common).strip()
    rsh = render_template("rsync_ssh.j2", port=host.port, jump=bool(proxy),
                          proxy_command=proxy, **common).strip()
    return ["-e", rsh]


def rsync_spec(host, path: str) -> str:
    """`[user@]address:path` for rsync; an IPv6 address is bracketed."""
    address = f"[{host.address}]" if ":" in host.address and not host.address.startswith("[") else host.address
    return f"{host.user + '@' if host.user else ''}{address}:{path}"
