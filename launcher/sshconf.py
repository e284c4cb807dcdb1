"""A host's SSH settings as OpenSSH itself resolves them: `ssh -G NAME` prints the effective client
configuration after `Include`, `Match`, host patterns and %-tokens, so the one authority on what a
user's ~/.ssh/config means is asked, not re-implemented. Where there is no `ssh` binary, paramiko's
parser (a subset of OpenSSH's) is the fallback.

`settings(host)` -> `Settings` (what OpenSSH would use, each value with where it came from);
`resolve(host)` -> a copy of the inventory's `Host` with those values filled in wherever the inventory
left a key unset (the inventory's own values always win): its `address` becomes the real HostName,
never an alias only this machine's config knows. paramiko connections and the ssh/rsync command lines
are both built from that copy. The inventory's `ssh.config` names the config file (ssh -F).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
from typing import Optional

SSH_G_TIMEOUT = 10  # seconds: `ssh -G` reads files only, it never connects
_KEYS = ("hostname", "user", "port", "identityfile", "identityagent", "proxyjump", "proxycommand",
         "userknownhostsfile", "hostkeyalias", "stricthostkeychecking", "connecttimeout",
         "serveraliveinterval", "serveralivecountmax")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The effective settings of one host; `origin[key]` says where each came from."""
    source: str                      # "ssh -G" | "paramiko (no ssh binary)"
    values: dict                     # ssh -G key -> list of values (identityfile may repeat)
    origin: dict                     # key -> "ssh config" | "OpenSSH default"

    def one(self, key: str) -> Optional[str]:
        got = self.values.get(key) or []
        return got[0] if got and got[0] not in ("none", "") else None


def _parse(text: str) -> dict:
    out: dict = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key.lower() in _KEYS:
            out.setdefault(key.lower(), []).append(value.strip())
    return out


def _ssh_g(name: str, config: Optional[str]) -> dict:
    argv = ["ssh", "-G", *(["-F", config] if config else []), "--", name]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=SSH_G_TIMEOUT, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        from launcher.errors import UserError
        raise UserError(f"ssh -G {name} failed: {(p.stderr.strip().splitlines() or ['?'])[-1]}; "
                        f"fix the OpenSSH client configuration ({config or '~/.ssh/config'})")
    return _parse(p.stdout)


def _paramiko(name: str, config: Optional[str]) -> dict:
    import paramiko

    path = os.path.expanduser(config or "~/.ssh/config")
    cfg = paramiko.SSHConfig.from_path(path) if os.path.isfile(path) else paramiko.SSHConfig()
    found = cfg.lookup(name)
    out = {k: [str(v)] for k, v in found.items() if k in _KEYS and not isinstance(v, list)}
    for k, v in found.items():
        if k in _KEYS and isinstance(v, list):
            out[k] = [" ".join(v)] if k == "userknownhostsfile" else [str(x) for x in v]
    out.setdefault("hostname", [name])
    return out


@functools.lru_cache(maxsize=1024)
def _settings(name: str, config: Optional[str], has_ssh: bool) -> Settings:
    if not has_ssh:
        values = _paramiko(name, config)
        return Settings("paramiko (no ssh binary)", values, {k: "ssh config" for k in values})
    values = _ssh_g(name, config)
    defaults = _ssh_g(name, os.devnull)   # what OpenSSH would use with no configuration at all
    origin = {k: ("OpenSSH default" if defaults.get(k) == v else "ssh config") for k, v in values.items()}
    return Settings("ssh -G", values, origin)


def settings(host) -> Settings:
    """The effective OpenSSH settings of `host` (its inventory address is the name looked up)."""
    return _settings(host.address, host.ssh_config, shutil.which("ssh") is not None)


def _int(text: Optional[str]) -> Optional[int]:
    return int(text) if text and text.isdigit() else None


def _policy(value: Optional[str]) -> Optional[str]:
    """OpenSSH's StrictHostKeyChecking as an inventory policy (never one that accepts a changed or
    any unknown key: `no`/`ask` keep mae-launch's default, strict)."""
    return {"accept-new": "accept-new", "yes": "strict", "true": "strict"}.get((value or "").lower())


def _existing(paths: list) -> tuple:
    return tuple(p for p in (os.path.expanduser(x) for x in paths) if os.path.isfile(p))


def resolve(host):
    """`host` with OpenSSH's effective settings wherever the inventory left a key unset."""
    if host.connection == "local" or getattr(host, "resolved_by", ""):
        return host
    s = settings(host)
    fromconf = {k for k, o in s.origin.items() if o == "ssh config"}
    keys = " ".join(s.values.get("userknownhostsfile", [])).split()
    agent = s.one("identityagent")
    alive = _int(s.one("serveraliveinterval"))
    changes = dict(
        address=s.one("hostname") or host.address,
        port=host.port or _int(s.one("port")),
        user=host.user or s.one("user"),
        proxy_jump=host.proxy_jump or s.one("proxyjump"),
        proxy_command=None if host.proxy_jump else s.one("proxycommand"),
        known_hosts_files="" if host.known_hosts else " ".join(os.path.expanduser(k) for k in keys),
        host_key_alias=s.one("hostkeyalias"),
        host_key_policy=host.host_key_policy or _policy(s.one("stricthostkeychecking")) or "strict",
        connect_timeout=host.connect_timeout or (float(s.one("connecttimeout"))
                                                 if (s.one("connecttimeout") or "").isdigit() else None),
        alive_interval=alive if alive and "serveraliveinterval" in fromconf else None,
        identity_files="" if host.identity_file else "\n".join(_existing(s.values.get("identityfile", []))),
        identities_from_config="identityfile" in fromconf,
        identity_agent=None if agent in (None, "SSH_AUTH_SOCK") else os.path.expanduser(agent),
        resolved_by=s.source)
    return dataclasses.replace(host, **changes)


def explain(host) -> list:
    """(key, value, from) rows: every setting a connection to `host` uses and where it came from."""
    if host.connection == "local":
        return [("connection", "local", "inventory")]
    s, r = settings(host), resolve(host)
    inv_set = {"port": host.port, "user": host.user, "identityfile": host.identity_file,
               "proxyjump": host.proxy_jump, "userknownhostsfile": host.known_hosts,
               "connecttimeout": host.connect_timeout, "stricthostkeychecking": host.host_key_policy}
    rows = [("source", s.source, host.ssh_config or "~/.ssh/config")]
    for key in _KEYS:
        if inv_set.get(key) is not None:
            rows.append((key, str(inv_set[key]), "inventory"))
        elif s.values.get(key):
            rows.append((key, " ".join(s.values[key]), s.origin.get(key, "ssh config")))
    rows.append(("→ address", r.address, "used to connect and as the rendezvous HostName"))
    return rows
