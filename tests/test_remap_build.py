"""Building remap_ops.so from scratch with make (into a copy of remap/, so that nothing in use is
touched), its dependency rules, `make ipu` and `make clean`, and the MAE_REMAP modes in fresh processes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REMAP = ROOT / "remap"


def make(srcdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["make", "-C", str(srcdir), f"PYTHON={sys.executable}", *args],
                          capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A clean build in a fresh copy of remap/ (sources and Makefile only)."""
    src = tmp_path_factory.mktemp("remap-build") / "remap"
    src.mkdir()
    shutil.copy2(REMAP / "Makefile", src / "Makefile")
    shutil.copytree(REMAP / "remap_ops", src / "remap_ops")
    t0 = time.monotonic()
    proc = make(src)
    print(f"clean build: {time.monotonic() - t0:.1f}s")
    assert "built " in proc.stdout
    assert (src / "remap_ops.so").is_file()
    return src


def run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MAE_REMAP")}
    full_env.update(env, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-W", "always::RuntimeWarning", "-c", textwrap.dedent(code)],
                          capture_output=True, text=True, env=full_env, cwd=ROOT, timeout=120)


CHECK = """
    import torch, remap
    from remap import reference
    shuffle = torch.rand(2, 6).argsort(1)
    ids_keep, ids_restore = shuffle[:, :2], shuffle.argsort(1)
    x, xv = torch.randn(2, 6, 4), torch.randn(2, 3, 4)
    mask, pos = torch.randn(4), torch.randn(1, 7, 4)
    for _ in range(2):
        assert torch.equal(remap.keep(x, ids_keep), reference.keep(x, ids_keep))
        assert torch.equal(remap.restore(xv, ids_restore, mask, pos), reference.restore(xv, ids_restore, mask, pos))
    print(remap.status())
"""


def test_clean_build_loads_and_matches_plain_path(built):
    proc = run_python(CHECK, MAE_REMAP="require", MAE_REMAP_LIB=str(built / "remap_ops.so"))
    assert proc.returncode == 0, proc.stderr
    assert f"native ops from {built / 'remap_ops.so'}" in proc.stdout
    assert "Warning" not in proc.stderr


def test_repeated_make_does_nothing_and_headers_are_tracked(built):
    so = built / "remap_ops.so"
    before = so.stat().st_mtime_ns
    again = make(built)
    assert "Nothing to be done" in again.stdout and so.stat().st_mtime_ns == before
    assert "g++" not in make(built, "-n").stdout
    header = built / "remap_ops" / "remap.h"
    os.utime(header, ns=(time.time_ns(), time.time_ns() + 10**9))
    dry = make(built, "-n").stdout  # what would be rebuilt, without rebuilding
    assert "remap_cpu.cpp" in dry and "-shared" in dry


def test_make_ipu_is_out_of_scope():
    ipu = subprocess.run(["make", "-C", str(REMAP), "ipu"], capture_output=True, text=True, timeout=60)
    assert ipu.returncode != 0 and "Poplar SDK" in ipu.stderr and "out of scope" in ipu.stderr


def test_make_clean_removes_outputs(built, tmp_path):
    """`make clean; make` is the reference's build sequence; clean is checked on a copy of the clean build."""
    copy = tmp_path / "remap"
    shutil.copytree(built, copy, symlinks=True)
    make(copy, "clean")
    assert not (copy / "remap_ops.so").exists() and not (copy / "build").exists()
    assert (copy / "remap_ops" / "remap_cpu.cpp").is_file() and (built / "remap_ops.so").is_file()


def test_with_jpeg_0_the_library_has_no_crop_decoder_and_says_why(built, tmp_path):
    """WITH_JPEG=0 (or a host without libjpeg-turbo's headers): remap_ops.so without the JPEG crop
    decoder, and without libjpeg; remap itself still loads, and the pipeline says why it decodes whole JPEGs."""
    copy = tmp_path / "remap"
    shutil.copytree(built, copy, symlinks=True)
    out = make(copy, "WITH_JPEG=0").stdout
    assert "jpeg_crop.c" not in out, out
    if (built / "build" / "jpeg_crop.o").exists():  # the clean build has the decoder: this one is rebuilt without
        assert "no JPEG crop decoder: WITH_JPEG=0" in out, out
    code = "import remap; from remap import jpeg_crop; print(remap.status()); print(jpeg_crop.describe())"
    proc = run_python(code, MAE_REMAP="require", MAE_REMAP_LIB=str(copy / "remap_ops.so"))
    assert proc.returncode == 0, proc.stderr
    assert "native ops from" in proc.stdout
    assert "JPEG crop decoding off: remap_ops.so was built without it" in proc.stdout, proc.stdout
    ldd = subprocess.run(["ldd", str(copy / "remap_ops.so")], capture_output=True, text=True, timeout=60).stdout
    assert "libjpeg" not in ldd


TORCH_FREE_CHECK = """
    import io, numpy as np, torch
    from PIL import Image
    import remap
    from remap import jpeg_crop
    print(remap.status())
    print(jpeg_crop.describe())
    decode = jpeg_crop.decoder()
    if decode is not None:
        img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 56, 3), dtype=np.uint8))
        buf = io.BytesIO(); img.save(buf, "JPEG", quality=90); data = buf.getvalue()
        full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        print("same pixels:", np.array_equal(decode(data, (3, 5, 30, 41)), full[3:33, 5:46]))
"""


@pytest.mark.sdk_compat
def test_beside_torch_older_than_2_4_the_library_is_built_without_the_torch_ops(tmp_path):
    """The Poplar SDK's torch 2.0.1 (make test-sdk-compat): remap's Python side needs torch 2.4, so make
    builds remap_ops.so without the torch ops (TORCH_OPS=auto; forced with TORCH_OPS=0 under a newer
    torch): it builds there, needs no torch, remap takes its plain path, and the JPEG crop decoder loads."""
    import torch

    src = tmp_path / "remap"
    src.mkdir()
    shutil.copy2(REMAP / "Makefile", src / "Makefile")
    shutil.copytree(REMAP / "remap_ops", src / "remap_ops")
    old = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2]) < (2, 4)
    out = make(src, *([] if old else ["TORCH_OPS=0"])).stdout
    assert "no torch ops" in out and "remap_cpu.cpp" not in out, out
    lib = src / "remap_ops.so"
    assert b"remap-build: torch-ops=0;" in lib.read_bytes()
    ldd = subprocess.run(["ldd", str(lib)], capture_output=True, text=True, timeout=60).stdout
    assert "libtorch" not in ldd and "libc10" not in ldd, ldd
    proc = run_python(TORCH_FREE_CHECK, MAE_REMAP_LIB=str(lib))
    assert proc.returncode == 0, proc.stderr
    assert "plain PyTorch path" in proc.stdout
    if "no JPEG crop decoder" not in out:  # built with libjpeg-turbo's headers
        assert "JPEG crop decoding: libjpeg-turbo" in proc.stdout and "same pixels: True" in proc.stdout, proc.stdout
    else:
        assert "built without it" in proc.stdout, proc.stdout


def test_mode_off_uses_plain_path_without_warning():
    proc = run_python(CHECK, MAE_REMAP="off", MAE_REMAP_LIB="/nonexistent/remap_ops.so")
    assert proc.returncode == 0, proc.stderr
    assert "plain PyTorch path (MAE_REMAP=off)" in proc.stdout and "Warning" not in proc.stderr


def test_mode_auto_falls_back_with_one_warning():
    proc = run_python(CHECK, MAE_REMAP_LIB="/nonexistent/remap_ops.so")  # auto is the default
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("RuntimeWarning") == 1, proc.stderr
    assert "make -C remap" in proc.stderr and "/nonexistent/remap_ops.so" in proc.stderr


def test_mode_require_without_library_is_an_error():
    proc = run_python(CHECK, MAE_REMAP="require", MAE_REMAP_LIB="/nonexistent/remap_ops.so")
    assert proc.returncode != 0
    assert "RemapUnavailable: MAE_REMAP=require but the native remap library is not loaded" in proc.stderr


def test_mode_invalid_value_names_the_variable():
    proc = run_python("import remap", MAE_REMAP="fast")
    assert proc.returncode != 0 and "MAE_REMAP='fast' is not one of auto, off, require" in proc.stderr
