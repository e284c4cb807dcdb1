"""The crop-only JPEG decoder of remap_ops.so (remap_ops/jpeg_crop.c), for the pretraining input pipeline.

    decoder() -> decode or None       decode(data, (i, j, h, w)) -> uint8 [h, w, 3] numpy array, or None
    describe() -> str                 one line: which decoder this process has, or why none

libjpeg-turbo decodes only the crop box of a JPEG (rows above it skipped, rows below it never read,
columns outside it not converted), giving the same pixels as a full decode cut to the box. The library
has it when it was built on a host with libjpeg-turbo 2.0+ headers (remap/Makefile, WITH_JPEG), with
or without the torch ops (beside torch older than 2.4, the Poplar SDK's, it is built without them);
without it, or for a file it cannot turn into RGB (CMYK, corrupt data), `decoder()` is None or
`decode` returns None and the caller decodes the whole image as before. MAE_JPEG_CROP=off turns it off.
"""
from __future__ import annotations

import ctypes
import functools
import os

import numpy as np

_MSG_LEN = 200
_load_error = ""


#: in a library built without the torch ops (remap_ops/build_info.c): it needs no torch to load
TORCH_FREE = b"remap-build: torch-ops=0;"


def _torch_free(path) -> bool:
    try:
        return TORCH_FREE in path.read_bytes()
    except OSError:
        return False


def _library():
    """The remap library: the one remap's own loader loaded (it checks torch), or else one built
    without the torch ops (torch older than 2.4: the Poplar SDK's), which ctypes loads alone; or None."""
    global _load_error
    import remap
    from remap import _native

    path = _native.library_path()
    if not remap.available() and not _torch_free(path):
        _load_error = remap.status()
        return None
    lib = ctypes.CDLL(str(path))  # the handle of the library remap loaded, or the torch-free one
    if not hasattr(lib, "remap_jpeg_crop"):
        _load_error = "remap_ops.so was built without it (no libjpeg-turbo 2.0+ headers: install libjpeg-dev, make -C remap)"
        return None
    return lib


@functools.lru_cache(maxsize=None)
def decoder():
    """The crop decoder of this process (loaded once), or None: see describe()."""
    global _load_error
    if os.environ.get("MAE_JPEG_CROP", "").strip().lower() == "off":
        _load_error = "MAE_JPEG_CROP=off"
        return None
    lib = _library()
    if lib is None:
        return None
    fn = lib.remap_jpeg_crop
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                   ctypes.c_void_p, ctypes.c_char_p]

    def decode(data: bytes, box, msg=None) -> np.ndarray | None:
        """The box's pixels, or None (with the decoder's sentence in `msg`, a buffer of _MSG_LEN bytes)."""
        i, j, h, w = box
        out = np.empty((max(h, 0), max(w, 0), 3), np.uint8)  # a box it refuses may be empty
        if fn(data, len(data), i, j, h, w, out.ctypes.data, msg) != 0:
            return None
        return out

    decode.version = lib.remap_jpeg_crop_version()
    return decode


def why_not(data: bytes, box) -> str:
    """The decoder's sentence for a file and box it refused ('' when it decoded them)."""
    decode = decoder()
    if decode is None:
        return _load_error
    msg = ctypes.create_string_buffer(_MSG_LEN)
    return "" if decode(data, box, msg) is not None else msg.value.decode(errors="replace")


def describe() -> str:
    """One line: the crop decoder in use, or why there is none."""
    found = decoder()
    if found is None:
        return f"JPEG crop decoding off: {_load_error}"
    v = found.version
    return f"JPEG crop decoding: libjpeg-turbo {v // 1000000}.{v // 1000 % 1000}.{v % 1000} (remap_ops.so)"
