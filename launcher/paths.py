"""Paths as a host sees them, and where known_hosts lives here."""
import os
import pathlib


class HostPath(str):
    """A path on a host: absolute or `~/...`. The `q` filter renders `~/x` as "$HOME"/'x'."""

    def on_host(self) -> str:
        """The spelling a remote command (rsync, sftp) takes: `~/x` -> `x` (relative to the home)."""
        if self == "~":
            return "."
        return self[2:] if self.startswith("~/") else str(self)


def default_known_hosts() -> pathlib.Path:
    return pathlib.Path(os.path.expanduser("~/.ssh/known_hosts"))


def known_hosts_path(known_hosts) -> pathlib.Path:
    """The known_hosts file of an inventory value (None: the user's ~/.ssh/known_hosts)."""
    return pathlib.Path(known_hosts) if known_hosts else default_known_hosts()
