"""One precision policy for every job: the config key ``precision`` (auto | fp32 | bf16 | fp16).

======  ====================================================  ========================  =============
value   cpu                                                   cuda                      ipu
======  ====================================================  ========================  =============
auto    bf16 autocast on CPUs with native bf16, else fp32      fp32                      fp16 if half
fp32    fp32                                                  fp32                      fp32 (half: no)
bf16    bf16 autocast (fp32 with a warning without native)    bf16 autocast             error
fp16    error                                                 fp16 autocast + scaling   fp16 (= half)
======  ====================================================  ========================  =============

Native bf16 means AVX512-BF16 or AMX (read from /proc/cpuinfo, or torch's CPU capability checks).
On IPU the ``half`` key and ``loss_scale`` carry fp16; ``precision`` must not contradict them.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import pathlib

from mae.errors import ConfigError, warn

CHOICES = ("auto", "fp32", "bf16", "fp16")
_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclasses.dataclass(frozen=True)
class Precision:
    """What runs: ``name`` is fp32, bf16 or fp16; ``autocast`` the torch dtype or None."""

    name: str
    autocast: object = None     # torch dtype for torch.autocast, None: no autocast
    scaler: bool = False        # dynamic loss scaling (fp16 on CUDA)
    half: bool = False          # fp16 model and optimizer state (IPU)


def _cpuinfo_flags(path: str = "/proc/cpuinfo") -> set[str]:
    try:
        text = pathlib.Path(path).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_has_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    if _cpuinfo_flags() & set(_CPU_FLAGS):
        return True
    import torch

    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def resolve(precision: str, device_type: str, half: bool = False) -> Precision:
    """The precision that runs for config value ``precision`` on ``device_type`` (cpu, cuda, ipu)."""
    if precision not in CHOICES:
        raise ConfigError(f"precision must be one of {', '.join(CHOICES)}, got '{precision}'")
    if device_type == "ipu":
        return _resolve_ipu(precision, half)
    import torch

    if precision == "fp16":
        if device_type != "cuda":
            raise ConfigError("precision fp16 needs device cuda; use bf16, fp32 or auto (on IPU: --half true)")
        return Precision("fp16", torch.float16, scaler=True)
    if precision == "auto":
        if device_type == "cpu" and cpu_has_bf16():
            return Precision("bf16", torch.bfloat16)
        return Precision("fp32")
    if precision == "bf16":
        if device_type == "cpu" and not cpu_has_bf16():
            warn("this CPU has no native bf16 (AVX512-BF16/AMX); running in fp32")
            return Precision("fp32")
        return Precision("bf16", torch.bfloat16)
    return Precision("fp32")


def _resolve_ipu(precision: str, half: bool) -> Precision:
    if precision == "bf16":
        raise ConfigError("precision bf16 is not available on IPU; use --half true (fp16) or --precision fp32")
    if precision == "fp32" and half:
        raise ConfigError("precision fp32 contradicts half true on IPU; drop one of them")
    if precision == "fp16" or (precision == "auto" and half):
        return Precision("fp16", half=True)
    return Precision("fp32")


def autocast(device_type: str, prec: Precision):
    """The autocast context of ``prec`` (a null context for fp32 and on IPU)."""
    if prec.autocast is None or device_type == "ipu":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type, dtype=prec.autocast)


def make_scaler(device_type: str, prec: Precision):
    """The loss scaler of ``prec`` (enabled only for fp16 on CUDA); works on torch 2.0 and newer."""
    import torch

    enabled = prec.scaler and device_type == "cuda"
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device_type if device_type in ("cpu", "cuda") else "cpu", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)
