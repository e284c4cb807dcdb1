"""Host-key policies for paramiko, matching OpenSSH's StrictHostKeyChecking=yes|accept-new.

- strict: the key must already be in known_hosts (paramiko.RejectPolicy).
- accept-new: an unknown host's key is appended to the known_hosts file; a host whose key is
  known but different is still refused (paramiko raises BadHostKeyException before any policy
  is consulted — the policy is only asked about hosts it has never seen).
Never AutoAddPolicy.
"""
from __future__ import annotations

import os
import pathlib
import threading

import paramiko

_write_lock = threading.Lock()


def default_known_hosts() -> pathlib.Path:
    return pathlib.Path(os.path.expanduser("~/.ssh/known_hosts"))


class AcceptNewPolicy(paramiko.MissingHostKeyPolicy):
    """Record the key of a host never seen before (and only such a host) in `path`."""

    def __init__(self, path: pathlib.Path):
        self.path = pathlib.Path(path)

    def missing_host_key(self, client, hostname, key):
        known = client.get_host_keys().lookup(hostname)
        if known:  # known under another key type: treat as changed
            raise paramiko.BadHostKeyException(hostname, key, next(iter(known.values())))
        with _write_lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(self.path, "a") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def apply_policy(client: paramiko.SSHClient, policy: str, known_hosts: pathlib.Path | None) -> None:
    """Load `known_hosts` into `client` and set the missing-key policy named by `policy`."""
    path = pathlib.Path(known_hosts) if known_hosts else default_known_hosts()
    if path.exists():
        # load into the client's own (unsaved) set; paramiko never rewrites this file for us
        client.get_host_keys().load(str(path))
    if policy == "accept-new":
        client.set_missing_host_key_policy(AcceptNewPolicy(path))
    elif policy == "strict":
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    else:
        raise ValueError(f"unknown host_key_policy {policy!r}")


def known_hosts_path(known_hosts) -> pathlib.Path:
    return pathlib.Path(known_hosts) if known_hosts else default_known_hosts()
