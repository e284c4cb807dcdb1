"""Errors meant for people: one sentence, exit status 2, never a traceback.

Raise :class:`UserError` (or a subclass) anywhere in ``mae`` for bad input — a missing path, an
unknown config key, an empty class folder — with a message that names the thing and says what to
do. Entry points wrap their body in :func:`user_errors`, which prints ``error: <message>`` on
stderr and exits with status 2.
"""
from __future__ import annotations

import contextlib
import sys

EXIT_USAGE = 2


class UserError(Exception):
    """Bad input from the user; ``str(err)`` is the one sentence shown."""


class ConfigError(UserError):
    """Unknown config name or key, or a value of the wrong type."""


class DataError(UserError):
    """Missing dataset path, empty class folder, unusable dataset."""


class CheckpointError(UserError):
    """Missing or unreadable checkpoint given by the user."""


class DeviceError(UserError):
    """Requested device is not available (e.g. ipu without the Poplar SDK)."""


class TrainingError(UserError):
    """Training cannot go on (the loss became NaN or infinite)."""


def check_finite(loss: float, epoch: int, step: int, hint: str = "") -> float:
    """The one NaN behaviour of every job: a non-finite loss stops the job with one sentence (exit 2)."""
    import math

    if not math.isfinite(loss):
        hint = hint or "try a lower --blr, more --warmup_epochs or --precision fp32"
        raise TrainingError(f"loss is {loss} at epoch {epoch} step {step}; stopping ({hint})")
    return loss


@contextlib.contextmanager
def user_errors(prog: str = "mae"):
    """Turn :class:`UserError` into one line on stderr and ``SystemExit(2)``.

    Ctrl-C exits with status 130 and one line instead of a traceback.
    """
    try:
        yield
    except UserError as err:
        print(f"{prog}: error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def warn(message: str) -> None:
    """Print a one-line warning on stderr."""
    print(f"warning: {message}", file=sys.stderr, flush=True)
