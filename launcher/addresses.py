"""Host addresses where they meet a port or a path: IPv6 brackets, and ProxyJump lists.

- `host_port("fe80::1", 22)` -> "[fe80::1]:22"; `remote_spec("root", "::1", "/w/")` -> "root@[::1]:/w/"
  (unbracketed, rsync would read the colons as its own syntax).
- `parse_jumps("a,u@b:2222,[::1]:22")` -> [(None, "a", None), ("u", "b", 2222), (None, "::1", 22)],
  the hops of an OpenSSH ProxyJump value in order; a malformed value raises ValueError.
"""
from __future__ import annotations

import re
from typing import NamedTuple, Optional

_HOST = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_V6 = re.compile(r"^[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?$")


class Hop(NamedTuple):
    user: Optional[str]
    host: str
    port: Optional[int]


def is_ipv6(address: str) -> bool:
    return ":" in address


def bracket(address: str) -> str:
    """`address` as it must be written before `:port` or `:path`."""
    return f"[{address}]" if is_ipv6(address) and not address.startswith("[") else address


def host_port(address: str, port) -> str:
    return f"{bracket(address)}:{port}"


def destination(user: Optional[str], address: str) -> str:
    """ssh's `[user@]host` argument: an IPv6 address stays bare (ssh takes no brackets there)."""
    return f"{user + '@' if user else ''}{address}"


def remote_spec(user: Optional[str], address: str, path: str) -> str:
    """rsync's `[user@]host:path`, with an IPv6 address bracketed."""
    return f"{user + '@' if user else ''}{bracket(address)}:{path}"


def _port(text: str, hop: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"{hop!r}: the port must be a number from 1 to 65535")
    return int(text)


def parse_hop(hop: str) -> Hop:
    """One `[user@]host[:port]` (host may be `[v6]` or a bare IPv6 address without a port)."""
    if not hop:
        raise ValueError("an empty hop (two commas, or a comma at an end); write [user@]host[:port][,...]")
    user, at, rest = hop.rpartition("@")
    if at and not user:
        raise ValueError(f"{hop!r}: nothing before '@'; write user@host")
    port = None
    if rest.startswith("["):
        host, close, tail = rest[1:].partition("]")
        if not close or (tail and not tail.startswith(":")):
            raise ValueError(f"{hop!r}: an IPv6 address is written [address] or [address]:port")
        port = _port(tail[1:], hop) if tail else None
        if not _V6.match(host):
            raise ValueError(f"{hop!r}: {host!r} is not an IPv6 address")
    elif rest.count(":") == 1:
        host, text = rest.split(":")
        port = _port(text, hop)
    elif rest.count(":") > 1:
        host = rest
        if not _V6.match(host):
            raise ValueError(f"{hop!r}: not a host; write [user@]host[:port]")
    else:
        host = rest
    if not host or not (_HOST.match(host) or _V6.match(host)):
        raise ValueError(f"{hop!r}: {host!r} is not a host name or address; write [user@]host[:port]")
    return Hop(user or None, host, port)


def parse_jumps(spec: str) -> list:
    """Every hop of a ProxyJump value, first (nearest to this machine) to last."""
    return [parse_hop(part) for part in spec.split(",")]
