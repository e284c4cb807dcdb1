"""Host-key policies for paramiko, matching OpenSSH's StrictHostKeyChecking=yes|accept-new.

- strict: the key must already be in known_hosts (paramiko.RejectPolicy).
- accept-new: an unknown host's key is appended to the known_hosts file; a host whose key is
  known but different is still refused (paramiko raises BadHostKeyException before any policy
  is consulted — the policy is only asked about hosts it has never seen).
Never AutoAddPolicy.

known_hosts files are read as OpenSSH reads them: the user's file (or the inventory's
`known_hosts`) and the system-wide /etc/ssh/ssh_known_hosts(2). Marker lines are honoured:
`@revoked` keys are refused even when listed elsewhere; `@cert-authority` lines (host
certificates, which paramiko cannot verify) never break the other lines, and a host known only
through one is refused with a sentence saying so. A line paramiko cannot parse is skipped.
"""
from __future__ import annotations

import fnmatch
import os
import pathlib
import threading

import paramiko
from paramiko.hostkeys import HostKeyEntry

from launcher.paths import known_hosts_path

_write_lock = threading.Lock()
# OpenSSH's GlobalKnownHostsFile default
SYSTEM_KNOWN_HOSTS = ("/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2")


class KnownHostsError(paramiko.SSHException):
    """A host key refused for a reason of known_hosts' own (revoked, certificate-only)."""


class Markers:
    """`@revoked` keys and `@cert-authority` host patterns of the files read."""

    def __init__(self):
        self.revoked: list = []        # (key type, base64, where)
        self.cert_authority: list = []  # (host patterns, where)

    def add(self, line: str, where: str) -> None:
        fields = line.split()
        if len(fields) < 4:
            return
        if fields[0] == "@revoked":
            self.revoked.append((fields[2], fields[3], where))
        elif fields[0] == "@cert-authority":
            self.cert_authority.append((fields[1].split(","), where))

    def revoked_at(self, key) -> str | None:
        for kind, blob, where in self.revoked:
            if kind == key.get_name() and blob == key.get_base64():
                return where
        return None

    def cert_authority_for(self, hostname: str) -> str | None:
        for patterns, where in self.cert_authority:
            if _matches(hostname, patterns):
                return where
        return None


def _matches(hostname: str, patterns: list) -> bool:
    names = {hostname, hostname.split("]")[0].lstrip("[")}
    hit = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if any(fnmatch.fnmatchcase(n, pattern.lstrip("!")) for n in names):
            if negated:
                return False
            hit = True
    return hit


def load_into(host_keys: paramiko.HostKeys, path: pathlib.Path, markers: Markers) -> None:
    """Add the plain lines of `path` to `host_keys`, marker lines to `markers`; never fails on a line."""
    try:
        text = pathlib.Path(path).read_text(errors="replace")
    except OSError:
        return
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            markers.add(line, f"{path}:{lineno}")
            continue
        try:
            entry = HostKeyEntry.from_line(line, lineno)
        except Exception:  # an unknown key type or a corrupt line: OpenSSH skips it too
            continue
        if entry is not None:
            host_keys._entries.append(entry)


class AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Record the key of a host never seen before (and only such a host) in `path`."""

    def __init__(self, path: pathlib.Path, markers: Markers | None = None):
        self.path = pathlib.Path(path)
        self.markers = markers or Markers()

    def missing_host_key(self, client, hostname, key):
        refuse_marked(self.markers, hostname, key)
        known = client.get_host_keys().lookup(hostname)
        if known:  # known under another key type: treat as changed
            raise paramiko.BadHostKeyException(hostname, key, next(iter(known.values())))
        with _write_lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(self.path, "a+b") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    needs_newline = f.read(1) != b"\n"
                    f.seek(0, os.SEEK_END)
                    if needs_newline:  # a last line without its newline must not swallow ours
                        f.write(b"\n")
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n".encode())
        client.get_host_keys().add(hostname, key.get_name(), key)


class StrictPolicy(paramiko.RejectPolicy):
    def __init__(self, markers: Markers):
        self.markers = markers

    def missing_host_key(self, client, hostname, key):
        refuse_marked(self.markers, hostname, key)
        super().missing_host_key(client, hostname, key)


def refuse_marked(markers: Markers, hostname: str, key) -> None:
    where = markers.revoked_at(key)
    if where:
        raise KnownHostsError(f"the host key of {hostname} is marked @revoked ({where}); refusing to connect")
    where = markers.cert_authority_for(hostname)
    if where:
        raise KnownHostsError(f"{hostname} is known only through a host certificate authority ({where}), which "
                              "mae-launch cannot verify; add the host's own key to known_hosts (ssh-keyscan, after checking it)")


def apply_policy(client: paramiko.SSHClient, policy: str, known_hosts: pathlib.Path | None,
                 config_files: tuple = ()) -> None:
    """Load the known_hosts files into `client` and set the missing-key policy named by `policy`.
    The inventory's `known_hosts` wins; else the ssh config's UserKnownHostsFile list (`config_files`,
    a new key recorded in the first, as OpenSSH does); else ~/.ssh/known_hosts."""
    paths = [pathlib.Path(p) for p in config_files] if config_files and not known_hosts else []
    paths = paths or [known_hosts_path(known_hosts)]
    path = paths[0]
    markers = Markers()
    for system in SYSTEM_KNOWN_HOSTS:
        load_into(client._system_host_keys, pathlib.Path(system), markers)
    # into the client's own (unsaved) set; paramiko never rewrites this file for us
    for each in paths:
        load_into(client.get_host_keys(), each, markers)
    client._mae_markers = markers
    if policy == "accept-new":
        client.set_missing_host_key_policy(AcceptNewPolicy(path, markers))
    elif policy == "strict":
        client.set_missing_host_key_policy(StrictPolicy(markers))
    else:
        raise ValueError(f"unknown host_key_policy {policy!r}")


def check_not_revoked(conn) -> None:
    """After connecting: refuse a server key listed as @revoked (even if also listed as known)."""
    markers = getattr(conn.client, "_mae_markers", None)
    transport = conn.client.get_transport()
    if markers is None or transport is None:
        return
    key = transport.get_remote_server_key()
    where = markers.revoked_at(key)
    if where:
        raise KnownHostsError(f"the host key of {conn.host} is marked @revoked ({where}); refusing to connect")
