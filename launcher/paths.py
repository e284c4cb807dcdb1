"""Paths as a host sees them."""


class HostPath(str):
    """A path on a host: absolute or `~/...`. The `q` filter renders `~/x` as "$HOME"/'x'."""

    def on_host(self) -> str:
        """The spelling a remote command (rsync, sftp) takes: `~/x` -> `x` (relative to the home)."""
        if self == "~":
            return "."
        return self[2:] if self.startswith("~/") else str(self)
