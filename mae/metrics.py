"""Meters, the reference meter line, and the metrics JSONL file.

API::

    m = SmoothedValue(); m.update(v, n=1); m.value, m.avg (since reset), m.median (window)
    logger = MetricLogger()                 named SmoothedValues
    logger.update(loss=0.7, lr=1e-4)        adds meters on first use
    logger.line("Training Epoch: [3]", i, n)  →  "Training Epoch: [3][ 7/40]\\ttime 0.1 (0.1)\\t..."
    meter_line(header, i, n, {"loss": (value, avg), ...}, formats)   pure formatter
    JsonlWriter(path).write({...})          one JSON object per line, flushed (rank 0 only)
    Tracker(output_dir, job, cfg).write({...})  metrics.jsonl + TensorBoard events (+ W&B with --wandb)
    scalars(record) -> (step, {tag: value})  which scalars a metrics record gives TensorBoard/W&B

The pretraining line is tab-separated:
``Training Epoch: [e][ i/n]  time v (avg)  data v (avg)  loss v (avg)  throughput v (avg)  LR v (avg)``
so the reference benchmark expressions ``throughput:?[ \\t]*(\\d+)`` and
``loss:?[ \\t]*([e\\d\\.\\-\\+]+)`` extract throughput (images/s for the whole job) and loss.

Tracking: :class:`Tracker` (rank 0) writes every record to ``metrics.jsonl`` and its scalars to
TensorBoard event files in the same folder (``events.out.tfevents.*``): ``train/loss``,
``train/lr``, ``train/throughput`` per printed step (x axis: steps since the start of training),
``epoch/loss``, ``epoch/lr``, ``epoch/throughput``, ``epoch/epoch_time`` per epoch and, for
finetuning and validation, ``val/top1``, ``val/top5``, ``val/loss``. With ``--wandb`` the same
scalars go to Weights & Biases when the ``wandb`` package is installed and a key is set
(``WANDB_API_KEY``, ``wandb login``) or ``WANDB_MODE=offline``; otherwise one warning, and
training goes on.
"""
from __future__ import annotations

import collections
import json
import math
import os
import pathlib
import statistics
import sys

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


#: metrics-record keys → TensorBoard tag (anything else numeric goes under the record's section)
_TAGS = {"val_top1": "val/top1", "val_top5": "val/top5", "val_loss": "val/loss", "top1": "val/top1",
         "top5": "val/top5", "train_loss": "epoch/loss", "elapsed_s": "epoch/elapsed_s"}
_SKIP = {"epoch", "step", "steps", "images", "n", "val_n", "type", "job"}


def scalars(record: dict) -> tuple[int, dict[str, float]]:
    """The global step and the ``{tag: value}`` scalars of one metrics record.

    Step records (``"step"`` present) count steps since the start of training; epoch records use the
    epoch; a validation record (``"type": "validate"``) uses its ``epoch`` (0 when absent).
    """
    if "step" in record:
        section, step = "train", int(record.get("epoch", 0)) * int(record.get("steps", 1)) + int(record["step"])
    elif record.get("type") == "validate":
        section, step = "val", int(record.get("epoch", 0))
    else:
        section, step = "epoch", int(record.get("epoch", 0))
    out = {}
    for key, value in record.items():
        if key in _SKIP or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        out[_TAGS.get(key, f"{section}/{key}")] = float(value)
    return step, out


class Tracker:
    """Rank 0's record sink: ``metrics.jsonl``, TensorBoard events beside it, and W&B with ``--wandb``.

    ``write(record)`` appends the record to the JSONL file and logs :func:`scalars` of it. A missing
    ``tensorboard`` or ``wandb`` package costs one warning on stderr, never the run.
    """

    def __init__(self, output_dir, job: str, cfg=None):
        self.output_dir = pathlib.Path(output_dir)
        self.jsonl = JsonlWriter(self.output_dir / "metrics.jsonl")
        self.path = self.jsonl.path
        self.tb = _tensorboard_writer(self.output_dir)
        self.wandb = _wandb_run(job, cfg) if cfg is not None and getattr(cfg, "wandb", False) else None

    def write(self, record: dict) -> None:
        self.jsonl.write(record)
        step, values = scalars(record)
        if self.tb is not None:
            for tag, value in values.items():
                self.tb.add_scalar(tag, value, step)
            self.tb.flush()
        if self.wandb is not None and values:
            self.wandb.log({**values, f"{_axis(record)}": step})

    def close(self) -> None:
        self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _axis(record: dict) -> str:
    return "global_step" if "step" in record else "epoch_index"


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _tensorboard_writer(output_dir: pathlib.Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        _warn("the tensorboard package is not installed: no TensorBoard event files (pip install tensorboard)")
        return None
    return SummaryWriter(log_dir=str(output_dir), flush_secs=30)


def _wandb_run(job: str, cfg):
    """A W&B run for ``--wandb``, or None (with one warning) when that cannot be."""
    try:
        import wandb
    except ImportError:
        _warn("--wandb: the wandb package is not installed (pip install wandb); logging to TensorBoard only")
        return None
    offline = os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled")
    if not offline and not (os.environ.get("WANDB_API_KEY") or _wandb_logged_in(wandb)):
        _warn("--wandb: no W&B key (set WANDB_API_KEY, run wandb login, or WANDB_MODE=offline); "
              "logging to TensorBoard only")
        return None
    from mae import config

    run = wandb.init(project=getattr(cfg, "wandb_project", None) or "mae", job_type=job,
                     name=getattr(cfg, "wandb_name", None) or None, dir=str(_wandb_dir(cfg)),
                     config=config.to_dict(cfg))
    run.define_metric("train/*", step_metric="global_step")
    run.define_metric("epoch/*", step_metric="epoch_index")
    run.define_metric("val/*", step_metric="epoch_index")
    return run


def _wandb_dir(cfg) -> pathlib.Path:
    path = pathlib.Path(getattr(cfg, "output_dir", None) or ".")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _wandb_logged_in(wandb) -> bool:
    try:
        return bool(wandb.api.api_key)
    except Exception:  # noqa: BLE001 - any failure means "no key"
        return False
