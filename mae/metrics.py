"""Meters, the reference meter line, and the metrics JSONL file.

API::

    m = SmoothedValue(); m.update(v, n=1); m.value, m.avg (since reset), m.median (window)
    logger = MetricLogger()                 named SmoothedValues
    logger.update(loss=0.7, lr=1e-4)        adds meters on first use
    logger.line("Training Epoch: [3]", i, n)  →  "Training Epoch: [3][ 7/40]\\ttime 0.1 (0.1)\\t..."
    meter_line(header, i, n, {"loss": (value, avg), ...}, formats)   pure formatter
    JsonlWriter(path).write({...})          one JSON object per line, flushed (rank 0 only)

The pretraining line is tab-separated:
``Training Epoch: [e][ i/n]  time v (avg)  data v (avg)  loss v (avg)  throughput v (avg)  LR v (avg)``
so the reference benchmark expressions ``throughput:?[ \\t]*(\\d+)`` and
``loss:?[ \\t]*([e\\d\\.\\-\\+]+)`` extract throughput (images/s for the whole job) and loss.
"""
from __future__ import annotations

import collections
import json
import math
import pathlib
import statistics

#: display format of each meter value (value and avg use the same)
FORMATS = {"time": "{:.4f}", "data": "{:.4f}", "loss": "{:.4f}", "throughput": "{:.1f}", "LR": "{:.4e}"}


class SmoothedValue:
    """Latest value, average since the last reset (weighted by n) and median of a window."""

    def __init__(self, window: int = 20):
        self.window = collections.deque(maxlen=window)
        self.total = 0.0
        self.count = 0
        self.value = math.nan

    def update(self, value: float, n: int = 1) -> None:
        value = float(value)
        self.value = value
        self.window.append(value)
        self.total += value * n
        self.count += n

    @property
    def avg(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def median(self) -> float:
        return statistics.median(self.window) if self.window else math.nan


def _fmt(name: str, x: float, formats: dict) -> str:
    return formats.get(name, "{:.4f}").format(x)


def meter_line(header: str, i: int, n: int, meters: dict, formats: dict | None = None, delimiter: str = "\t") -> str:
    """``header[ i/n]<TAB>name value (avg)<TAB>...``; ``meters`` maps name → (value, avg)."""
    formats = FORMATS if formats is None else formats
    width = len(str(n))
    parts = [f"{header}[{i:>{width}}/{n}]"]
    for name, (value, avg) in meters.items():
        parts.append(f"{name} {_fmt(name, value, formats)} ({_fmt(name, avg, formats)})")
    return delimiter.join(parts)


class MetricLogger:
    """A set of named :class:`SmoothedValue` meters in insertion order."""

    def __init__(self, delimiter: str = "\t", formats: dict | None = None):
        self.meters: dict[str, SmoothedValue] = {}
        self.delimiter = delimiter
        self.formats = dict(FORMATS if formats is None else formats)

    def update(self, n: int = 1, **values) -> None:
        for name, value in values.items():
            self.meters.setdefault(name, SmoothedValue()).update(value, n)

    def __getitem__(self, name: str) -> SmoothedValue:
        return self.meters[name]

    def averages(self) -> dict[str, float]:
        return {name: m.avg for name, m in self.meters.items()}

    def line(self, header: str, i: int, n: int) -> str:
        meters = {name: (m.value, m.avg) for name, m in self.meters.items()}
        return meter_line(header, i, n, meters, self.formats, self.delimiter)


class JsonlWriter:
    """Append-only JSON-lines file; each record is flushed as soon as it is written."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", buffering=1)

    def write(self, record: dict) -> None:
        self._fh.write(json.dumps(record, default=_plain) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _plain(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def read_jsonl(path) -> list[dict]:
    """All records of a metrics JSONL file (a torn last line is ignored)."""
    out = []
    for line in pathlib.Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
