"""Merged multi-host logs: every line prefixed by its host (and rank), coloured per host."""
from __future__ import annotations

import collections

from rich.console import Console
from rich.text import Text

COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta",
           "bright_green", "bright_yellow", "bright_blue", "red"]


class LogPrinter:
    """Feed it raw bytes per (host, file); it prints whole lines with a `host rN |` prefix."""

    def __init__(self, console: Console, hosts: list[str], keep: int = 200, show: bool = True):
        self.console = console
        self.width = max([len(h) for h in hosts] + [4])
        self.colour = {h: COLOURS[i % len(COLOURS)] for i, h in enumerate(hosts)}
        self.partial: dict[tuple[str, str], bytes] = {}
        self.recent: dict[tuple[str, str], collections.deque] = collections.defaultdict(
            lambda: collections.deque(maxlen=keep))
        self.show = show

    def prefix(self, host: str, label: str) -> Text:
        tag = f"{host:<{self.width}} {label:<3}" if label else f"{host:<{self.width}}    "
        return Text(f"{tag} | ", style=self.colour.get(host, "white"))

    def feed(self, host: str, key: str, label: str, data: bytes) -> None:
        buf = self.partial.get((host, key), b"") + data
        *lines, rest = buf.split(b"\n")
        self.partial[(host, key)] = rest
        for raw in lines:
            self._emit(host, key, label, raw)

    def flush(self, labels: dict | None = None) -> None:
        for (host, key), rest in list(self.partial.items()):
            if rest:
                self._emit(host, key, (labels or {}).get(key, ""), rest)
            self.partial[(host, key)] = b""

    def _emit(self, host: str, key: str, label: str, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        if "\r" in line:  # progress bars redraw with \r: keep the last state
            line = line.rsplit("\r", 1)[-1]
        self.recent[(host, key)].append(line)
        if self.show:
            self.console.print(self.prefix(host, label) + Text(line), soft_wrap=True, highlight=False)

    def last_lines(self, host: str, key: str, n: int = 10) -> list[str]:
        return list(self.recent.get((host, key), []))[-n:]

    def last_line(self, host: str) -> str:
        """The most recent non-empty line seen from any log of `host` (ranks first)."""
        best = ""
        for (h, key), lines in self.recent.items():
            if h == host and lines:
                nonempty = [line for line in lines if line.strip()]
                if nonempty and (not best or key != "h"):
                    best = nonempty[-1]
        return best
