"""remap: MAE's token bookkeeping, the keep-gather of the visible patches and the decoder's restore.

    keep(x[N, L, D], ids_keep[N, K]) -> [N, K, D]
    restore(x[N, 1+K, D], ids_restore[N, L], mask_token[D], pos=None) -> [N, 1+L, D]

Both run on the native ops of remap_ops.so (built with `make -C remap`; CPU kernels with OpenMP, CUDA
kernels when built with nvcc) or on the plain PyTorch path in `remap.reference`, which defines the
semantics. The environment variable MAE_REMAP chooses (read at import; `set_mode` overrides it):

    auto     (default) the native ops when the library is built and loads, else the plain path, with
             one warning saying why
    off      always the plain path
    require  the native ops; RemapUnavailable when the library is missing or cannot run the inputs

MAE_REMAP_LIB names another library file to load instead of remap/remap_ops.so.
"""
from __future__ import annotations

import os
import warnings

MODES = ("auto", "off", "require")


def _env_mode() -> str:
    value = os.environ.get("MAE_REMAP", "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"MAE_REMAP={value!r} is not one of auto, off, require; set it to one of them.")
    return value


_ENV_MODE = _env_mode()  # read once, at import; a bad value fails here, before torch is imported

import torch  # noqa: E402

from remap import _native, reference  # noqa: E402

__all__ = ["keep", "restore", "available", "load", "mode", "set_mode", "check", "RemapUnavailable", "status"]

_SUPPORTED_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


class RemapUnavailable(RuntimeError):
    """MAE_REMAP=require, but the native op cannot be used; the message says why and what to do."""


_mode: str | None = None          # set by set_mode; None: read MAE_REMAP
_load_error: str | None = None    # why the library did not load; None when loaded or not tried
_loaded = False
_tried = False
_warned: set[str] = set()
_kernels: dict[str, bool] = {}     # device type -> the library has kernels for it (filled on load)


def mode() -> str:
    """The mode in force: set_mode's value, else $MAE_REMAP as it was at import (default auto)."""
    return _mode if _mode is not None else _ENV_MODE


#: torch.library.register_fake and friends (torch 2.4+); older torch (the Poplar SDK's 2.0.1) takes
#: the plain path, with the one warning of a library that did not load
_TORCH_OK = hasattr(torch, "library") and hasattr(torch.library, "register_fake")


def _try_load(retry: bool = False) -> bool:
    global _loaded, _tried, _load_error
    if not _loaded and (retry or not _tried):
        _tried = True
        path = _native.library_path()
        if not _TORCH_OK:
            _load_error = f"torch {torch.__version__} lacks the custom-op APIs the native op needs (torch 2.4 or newer)"
            return False
        try:
            _native.load(path)
            _kernels.update({d: _native.has_kernel(d) for d in ("cpu", "cuda")})
            _loaded, _load_error = True, None
        except (OSError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _load_error = f"{path}: {first}"
    return _loaded


def set_mode(value: str) -> None:
    """Choose auto | off | require for this process (overrides MAE_REMAP); None goes back to MAE_REMAP's."""
    global _mode
    if value is not None and value not in MODES:
        raise ValueError(f"remap mode {value!r} is not one of auto, off, require.")
    _mode = value
    if value != "off":
        _try_load()


def load() -> bool:
    """Try (again) to load the native library, e.g. after building it in this process; True when loaded."""
    return _try_load(retry=True)


def available() -> bool:
    """True when the native library is loaded (loading it on first call)."""
    return _try_load()


def status() -> str:
    """One line saying what remap.keep/restore run on in this process."""
    m = mode()
    if m == "off":
        return "remap: plain PyTorch path (MAE_REMAP=off)"
    if _try_load():
        devices = [d for d, ok in _kernels.items() if ok]
        return f"remap: native ops from {_native.library_path()} ({', '.join(devices)})"
    return f"remap: plain PyTorch path (native library not loaded: {_load_error})"


def _unavailable(reason: str) -> RemapUnavailable:
    return RemapUnavailable(f"MAE_REMAP=require but {reason}; build it with `make -C remap` "
                            "(or `make remap`) or set MAE_REMAP=auto to fall back to the plain path.")


def check() -> None:
    """Raise RemapUnavailable when the mode is require and the library is not loaded (call at start-up)."""
    if mode() == "require" and not _try_load():
        raise _unavailable(f"the native remap library is not loaded ({_load_error})")


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _use_native(x: torch.Tensor) -> bool:
    m = mode()
    if m == "off":
        return False
    if not _try_load():
        if m == "require":
            raise _unavailable(f"the native remap library is not loaded ({_load_error})")
        _warn_once("load", f"remap: native op library not loaded ({_load_error}); using the plain PyTorch "
                           "path. Build it with `make -C remap`, or set MAE_REMAP=off to silence this.")
        return False
    if x.dtype not in _SUPPORTED_DTYPES or not _kernels.get(x.device.type, False):
        reason = f"the native op has no kernel for {x.dtype} on {x.device.type}"
        if m == "require":
            raise _unavailable(reason)
        _warn_once(f"kernel:{x.dtype}:{x.device.type}", f"remap: {reason}; using the plain PyTorch path.")
        return False
    return True


def keep(x: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """Gather the kept tokens: x[N, L, D], ids_keep[N, K] -> [N, K, D] (out[n, k] = x[n, ids_keep[n, k]])."""
    if not _use_native(x):
        return reference.keep(x, ids_keep)
    return torch.ops.remap.keep(x, ids_keep.long())


def restore(x: torch.Tensor, ids_restore: torch.Tensor, mask_token: torch.Tensor,
            pos: torch.Tensor | None = None) -> torch.Tensor:
    """Unshuffle the visible tokens, fill the removed ones with mask_token and add pos (if given).

    x[N, 1+K, D] holds the cls token first, then the K visible tokens in shuffled order; ids_restore[N, L];
    mask_token with D values; pos broadcastable to [N, 1+L, D] or None. Returns [N, 1+L, D].
    """
    if not _use_native(x):
        return reference.restore(x, ids_restore, mask_token, pos)
    n, _, d = x.shape
    rows = ids_restore.shape[1] + 1
    mask = mask_token.reshape(d).to(x.dtype)  # as the plain path: the mask token takes x's dtype first
    if pos is None:
        return torch.ops.remap.restore(x, ids_restore.long(), mask, None)
    fits = pos.shape[-2:] == (rows, d) and (pos.dim() == 2 or (pos.dim() == 3 and pos.shape[0] in (1, n)))
    dtype = torch.promote_types(x.dtype, pos.dtype)  # what `out + pos` gives for these (non-scalar) shapes
    if not fits or dtype not in _SUPPORTED_DTYPES or pos.device != x.device:
        return torch.ops.remap.restore(x, ids_restore.long(), mask, None) + pos
    return torch.ops.remap.restore(x.to(dtype), ids_restore.long(), mask.to(dtype), pos.to(dtype))


if mode() != "off":
    _try_load()
