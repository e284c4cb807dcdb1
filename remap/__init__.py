"""remap: MAE's token bookkeeping (keep-gather and decoder restore).

Until the native library is built, both ops run on the plain PyTorch path in `remap.reference`.
"""
from remap.reference import keep, restore

__all__ = ["keep", "restore", "available"]


def available() -> bool:
    """True when the native op library is loaded."""
    return False
