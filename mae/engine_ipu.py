"""Pretraining on Graphcore IPUs (poptorch); imported only when the config's device is ipu."""
from __future__ import annotations

import importlib.util

from mae.errors import DeviceError

SDK_MESSAGE = ("device ipu needs poptorch: enable the Poplar SDK (source <sdk>/enable) and install its "
               "poptorch wheel in this environment, or use --device cpu, cuda or auto")


def require_poptorch():
    """Import poptorch or stop with one line saying the Poplar SDK must be enabled."""
    if importlib.util.find_spec("poptorch") is None:
        raise DeviceError(SDK_MESSAGE)
    try:
        import poptorch
    except Exception as err:  # noqa: BLE001 - a broken SDK install is still a set-up problem
        raise DeviceError(f"{SDK_MESSAGE} (importing poptorch failed: {err})") from None
    return poptorch


def run(cfg, hooks=None) -> dict:
    require_poptorch()
    raise DeviceError("the IPU training loop is not available in this version; use --device cpu, cuda or auto")
