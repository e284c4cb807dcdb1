"""Merged multi-host logs: every line prefixed by its host (and rank), coloured per host."""
from __future__ import annotations

import collections
import re

from rich.console import Console
from rich.text import Text

COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta",
           "bright_green", "bright_yellow", "bright_blue", "red"]


AGENT_ERROR = re.compile(r"torch/distributed/elastic/\S+\] failed \(exitcode: -?\d+\)")
RANK_PREFIX = re.compile(r"^\[(?:rank|default)\d+\]:")  # torchrun's prefix on each line of a rank's stderr
# a rank's error that torch itself calls the consequence of another rank's failure
COLLATERAL = re.compile(r"remote worker crashing|Connection (?:closed|reset) by peer")


class AgentFold:
    """Noise folded while a run is followed, in one log: in a host log, torchrun's agent error line and
    its own tracebacks (ChildFailedError with its report, SignalException at a stop); in a rank log, a
    traceback whose error torch calls the consequence of another rank's failure. Each becomes one
    line, since the failed rank's own error is in its log and is what the failure report shows; any
    other traceback is shown whole. `take(line)` returns the lines to show for one line fed."""

    def __init__(self, host: str, rank: bool = False):
        self.host, self.rank, self.held, self.rules = host, rank, None, 0

    def take(self, line: str) -> list[str]:
        text = RANK_PREFIX.sub("", line, count=1).lstrip(" ") if self.rank else line
        if self.rules:  # inside ChildFailedError's report: it ends at its second ==== rule
            if text.strip() and set(text.strip()) == {"="}:
                self.rules -= 1
            return []
        if self.held is None:
            if text.startswith("Traceback (most recent call last):"):
                self.held = [line]
                return []
            return [] if not self.rank and AGENT_ERROR.search(line) else [line]
        raw = RANK_PREFIX.sub("", line, count=1)[1:] if self.rank and RANK_PREFIX.match(line) else line
        if not raw.strip() or raw[0] in " \t":
            self.held.append(line)
            return []
        held, self.held = self.held + [line], None
        return self._fold(text, held)

    def _fold(self, error: str, held: list) -> list[str]:
        if self.rank:
            if not COLLATERAL.search(error):
                return held
            return [f"({error.split(':')[0]} after another rank failed: traceback folded; "
                    f"mae-launch logs --host {self.host} shows it whole)"]
        if not error.startswith("torch.distributed.elastic."):
            return held
        name = error.split(":")[0].rsplit(".", 1)[-1]
        self.rules = 2 if name == "ChildFailedError" else 0
        return [f"(torchrun's {name} traceback folded; mae-launch logs --host {self.host} shows it whole)"]

    def rest(self) -> list[str]:
        held, self.held = self.held or [], None
        return held


class LogPrinter:
    """Feed it raw bytes per (host, file); it prints whole lines with a `host rN |` prefix. With `fold`,
    torchrun's own tracebacks in host logs are shown as one line each (AgentFold); every line is kept
    for `last_lines` all the same."""

    def __init__(self, console: Console, hosts: list[str], keep: int = 200, show: bool = True, fold: bool = False):
        self.console = console
        self.width = max([len(h) for h in hosts] + [4])
        self.colour = {h: COLOURS[i % len(COLOURS)] for i, h in enumerate(hosts)}
        self.partial: dict[tuple[str, str], bytes] = {}
        self.recent: dict[tuple[str, str], collections.deque] = collections.defaultdict(
            lambda: collections.deque(maxlen=keep))
        self.show = show
        self.fold = fold
        self.folds: dict = {}  # (host, log key) -> AgentFold

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
        for (host, key), fold in self.folds.items():
            for line in fold.rest():
                self._print(host, (labels or {}).get(key, ""), line)

    def _emit(self, host: str, key: str, label: str, raw: bytes) -> None:
        line = raw.decode(errors="replace").rstrip("\r")
        if "\r" in line:  # progress bars redraw with \r: keep the last state
            line = line.rsplit("\r", 1)[-1]
        self.recent[(host, key)].append(line)
        if not self.show:
            return
        fold = self.folds.setdefault((host, key), AgentFold(host, rank=key != "h")) if self.fold else None
        for shown in (fold.take(line) if fold else [line]):
            self._print(host, label, shown)

    def _print(self, host: str, label: str, line: str) -> None:
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
