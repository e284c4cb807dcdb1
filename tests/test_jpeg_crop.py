"""The crop-only JPEG decoder of remap_ops.so (remap/remap_ops/jpeg_crop.c, remap/jpeg_crop.py) against a
full decode by PIL (the reference pipeline's decoder) cut to the box: chroma subsamplings, progressive
and grayscale files, odd sizes, boxes at every edge, a column or a row wide; the files it refuses; and
the pretraining transform giving the same samples with and without it."""
from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from remap import jpeg_crop  # noqa: E402


@pytest.fixture(scope="module")
def decode():
    """The decoder of an up-to-date remap/remap_ops.so (incremental make). Without libjpeg-turbo's
    headers the library has none: a skip here, a failure in CI (.ci/run installs libjpeg-dev)."""
    proc = subprocess.run(["make", "-C", str(ROOT / "remap"), f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import remap

    assert remap.load(), remap.status()
    # built during this session (a fresh checkout has no library until the make above): forget what
    # earlier tests found (the pretraining transform asks the same cache)
    jpeg_crop.decoder.cache_clear()
    found = jpeg_crop.decoder()
    if found is None:
        message = jpeg_crop.describe()
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)
    return found


def jpeg(width: int, height: int, subsampling: int = 2, progressive: bool = False, mode: str = "RGB") -> bytes:
    import skimage.data

    img = Image.fromarray(skimage.data.astronaut()).resize((width, height), Image.BICUBIC).convert(mode)
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90, subsampling=subsampling, progressive=progressive)
    return out.getvalue()


def full_rgb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def boxes(width: int, height: int, rng: np.random.Generator):
    """Boxes touching every edge, one pixel wide or high, the whole image, and random ones."""
    rows = [(0, height), (height - 1, 1), (0, 1), (height // 3, max(1, height // 2))]
    for (i, h), j in itertools.product(rows, sorted({0, 1, width // 2, max(0, width - 17), width - 1})):
        for w in sorted({1, 2, 3, 16, 17, width - j}):
            if 0 < w <= width - j:
                yield i, j, h, w
    for _ in range(40):
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        yield int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w


FILES = [(370, 500, 2, False, "RGB"), (500, 333, 2, True, "RGB"), (65, 31, 1, False, "RGB"),
         (64, 64, 0, True, "RGB"), (33, 17, 2, False, "L"), (1, 1, 2, False, "RGB"), (2, 40, 2, True, "RGB"),
         (17, 1, 1, False, "RGB")]


@pytest.mark.parametrize("width,height,subsampling,progressive,mode", FILES)
def test_the_crop_is_the_full_decode_cut_to_the_box(decode, width, height, subsampling, progressive, mode):
    data = jpeg(width, height, subsampling, progressive, mode)
    full = full_rgb(data)
    rng = np.random.default_rng(width * 1000 + height)
    checked = 0
    for i, j, h, w in boxes(width, height, rng):
        got = decode(data, (i, j, h, w))
        assert got is not None and got.shape == (h, w, 3), (i, j, h, w)
        np.testing.assert_array_equal(got, full[i:i + h, j:j + w], err_msg=str((i, j, h, w)))
        checked += 1
    assert checked >= 40


def test_it_refuses_what_it_cannot_decode_with_a_sentence(decode):
    data = jpeg(64, 48)
    assert decode(data, (0, 0, 49, 10)) is None
    assert "not inside the image" in jpeg_crop.why_not(data, (0, 0, 49, 10))
    assert decode(data, (-1, 0, 4, 4)) is None and decode(data, (0, 60, 4, 5)) is None
    assert decode(data[: len(data) // 2], (0, 0, 48, 64)) is None  # truncated: libjpeg's warning is an error
    assert jpeg_crop.why_not(data[: len(data) // 2], (0, 0, 48, 64))
    assert decode(b"not a jpeg", (0, 0, 1, 1)) is None
    assert "JPEG" in jpeg_crop.why_not(b"not a jpeg", (0, 0, 1, 1))
    cmyk = io.BytesIO()
    Image.new("CMYK", (16, 16), (10, 20, 30, 40)).save(cmyk, "JPEG")
    assert decode(cmyk.getvalue(), (0, 0, 16, 16)) is None  # no CMYK -> RGB in libjpeg: PIL decodes it
    assert jpeg_crop.why_not(data, (0, 0, 48, 64)) == ""


def test_the_pretraining_transform_gives_the_same_samples_with_and_without_it(decode, tmp_path):
    from photos import write_photos

    from mae import fast_transforms

    with_crop = fast_transforms.FastPretrainTransform(224, normalize=False)
    whole = fast_transforms.FastPretrainTransform(224, normalize=False, crop_decode=False)
    assert jpeg_crop.decoder() is not None  # the decoder the transform calls
    assert "JPEG crop decoding: libjpeg-turbo" in fast_transforms.decoding()
    for k, path in enumerate(write_photos(tmp_path, 12)):
        data = path.read_bytes()
        for seed in range(3):
            torch.manual_seed(seed * 100 + k)
            a = with_crop(data)
            torch.manual_seed(seed * 100 + k)
            b = whole(data)
            assert torch.equal(a, b), (path.name, seed)


def test_it_can_be_turned_off_and_says_so(decode):
    code = ("from remap import jpeg_crop; from mae import fast_transforms; "
            "print(jpeg_crop.decoder() is None); print(fast_transforms.decoding())")
    env = dict(os.environ, MAE_JPEG_CROP="off", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120, check=True).stdout.splitlines()
    assert out == ["True", "JPEG decoding: whole images through simplejpeg (JPEG crop decoding off: MAE_JPEG_CROP=off)"]


def test_check_says_when_a_host_builds_remap_without_the_crop_decoder():
    from launcher import check

    assert check._compiler({"compiler": "ok", "jpeg": "2001005"}) == (True, "ok")
    assert check._compiler({"compiler": "ok", "jpeg": "none"}) == (True, "ok, no libjpeg-dev")  # said, not failed
    assert check._compiler({"compiler": "missing", "jpeg": "none"}) == (False, "missing")
