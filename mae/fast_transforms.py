"""The pretraining augmentation on uint8 tensors, decoding JPEGs at reduced size when the crop allows.

Same distribution as the reference (``mae.data.reference_pretrain_transform``): RandomResizedCrop
(scale 0.2-1, ratio 3/4-4/3, bicubic with antialiasing) then a horizontal flip with p = 0.5, drawn
from torch's generator in the reference's order (``crop_params``: torchvision's ``get_params`` call
for call, without its per-call set-up; then ``torch.rand(1) < 0.5``), so a seed gives the
reference's crops and flips. What differs is the work:

  - the crop is chosen from the JPEG header alone (size without decoding); then libjpeg-turbo decodes
    only the crop box (remap.jpeg_crop, in remap_ops.so when it was built with libjpeg-turbo's
    headers: rows above the box skipped, rows below never read, columns outside not converted; the
    same pixels as a full decode), or else the whole JPEG straight into a numpy array (simplejpeg:
    PIL's decoder settings, none of its copies); other formats, and JPEGs neither takes (CMYK), go
    through PIL;
  - when the crop is at least twice the output side in both directions, libjpeg decodes the image
    at half size through its DCT scaling (PIL ``draft``) and the crop box is mapped onto it exactly:
    a quarter of the pixels decoded and resized, and the crop is still only ever scaled down;
  - the crop and resize run on the decoded uint8 pixels (a channels-last view handed to torch's
    vectorised antialiased bicubic kernel, which then writes channels-last), with no float image;
  - normalisation is one fused pass per sample, or one per batch (``normalize=False`` gives uint8
    CHW tensors; ``normalize_batch`` turns a uint8 batch into the normalised float batch). Pretraining
    on CPU or CUDA takes the uint8 way: loader workers hand over a quarter of the bytes (shared
    memory, pinned memory, the copy to the GPU) and the batch is normalised on the device.

API::

    t = FastPretrainTransform(input_size)     t(file_bytes or PIL image) -> float [3, S, S]
    decoding() -> str                                   how JPEGs are decoded here (a log line)
    t.sample(width, height) -> (i, j, h, w, flip)   the random draw alone
    crop_params(width, height) -> (i, j, h, w)      RandomResizedCrop.get_params for that size
    normalize_batch(uint8 [N, 3, S, S]) -> float [N, 3, S, S]   on the batch's device
    model_input(batch) -> float batch                 normalize_batch for uint8, else unchanged
    collate_normalized(samples) -> (float batch, targets)   a loader's collate_fn: stack, then normalise
"""
from __future__ import annotations

import functools
import io
import math
import warnings

import numpy as np
import torch
from PIL import Image
from torch.nn.functional import interpolate
from torch.utils.data import default_collate

from remap import jpeg_crop

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCALE = (0.2, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
_MEAN255 = torch.tensor(IMAGENET_MEAN).mul(255.0).view(3, 1, 1)
_INV_STD255 = torch.tensor(IMAGENET_STD).mul(255.0).reciprocal().view(3, 1, 1)
_LOG_RATIO = [float(v) for v in torch.log(torch.tensor(RATIO))]  # float32 logs, as get_params takes them


def crop_params(width: int, height: int) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params`` for a width x height image, call for call
    (the same draws from torch's generator, the same float32 steps), without an image tensor and
    the per-call set-up (the log-ratio tensor, the API-usage logging)."""
    area = height * width
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(SCALE[0], SCALE[1]).item()
        aspect_ratio = torch.exp(torch.empty(1).uniform_(_LOG_RATIO[0], _LOG_RATIO[1])).item()
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,)).item()
            j = torch.randint(0, width - w + 1, size=(1,)).item()
            return i, j, h, w
    in_ratio = float(width) / float(height)  # fallback: the central crop
    if in_ratio < min(RATIO):
        w, h = width, int(round(width / min(RATIO)))
    elif in_ratio > max(RATIO):
        w, h = int(round(height * max(RATIO))), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def dct_divisor(width: int, height: int, out: int) -> int:
    """2 when a width x height crop still covers 2*out x 2*out (decode at half size), else 1.

    libjpeg's DCT scaling to 1/2 is a clean 2:1 reduction; at 1/4 and 1/8 its chroma and filter
    drift visibly from an antialiased bicubic resize, so those are not used."""
    return 2 if width >= 2 * out and height >= 2 * out else 1


def normalize_batch(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] (or one [3, H, W] sample) -> float, (x / 255 - mean) / std, on its device;
    ``FastPretrainTransform`` normalises its samples with it too, so both ways give the same values."""
    mean, inv_std = _constants(batch.device)
    return batch.float().sub_(mean).mul_(inv_std)


@functools.lru_cache(maxsize=None)
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalisation constants on `device`, copied there once (not at every step)."""
    return _MEAN255.to(device), _INV_STD255.to(device)


def model_input(batch: torch.Tensor) -> torch.Tensor:
    """A loader's batch as the model takes it: uint8 pixels (``normalize=False``) are normalised here,
    after the copy to the device; float batches (normalised already, or generated) pass unchanged."""
    return normalize_batch(batch) if batch.dtype == torch.uint8 else batch


def collate_normalized(samples):
    """``collate_fn`` of a loader whose consumer takes normalised floats (the IPU loop): the samples
    are stacked as they come (uint8 from ``normalize=False``), then the image batch is normalised in
    one pass, in the loader's worker: the same values as normalising each sample, at a fraction of
    the cost (no float sample to allocate and copy into the batch)."""
    imgs, targets = default_collate(samples)
    return model_input(imgs), targets


def _pixels(img: Image.Image) -> torch.Tensor:
    """uint8 [H, W, 3] tensor of a decoded RGB image (read-only: only ever read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(img))


def _half_size_crop(img: Image.Image, box, out: int) -> torch.Tensor | None:
    """The crop resized to out x out from a JPEG decoded at half size, or None when libjpeg did not
    scale. The crop box is mapped to the half-size pixels exactly (sub-pixel), so the output keeps
    the reference's geometry."""
    i, j, h, w = box
    width, height = img.size
    img.draft("RGB", (width // 2, height // 2))
    if img.size == (width, height):
        return None
    sx, sy = img.size[0] / width, img.size[1] / height
    if img.mode != "RGB":
        img = img.convert("RGB")
    small = img.resize((out, out), Image.BICUBIC, box=(j * sx, i * sy, (j + w) * sx, (i + h) * sy))
    return _pixels(small).permute(2, 0, 1)


def _jpeg_rgb(data: bytes) -> np.ndarray | None:
    """Decode a JPEG straight into an RGB uint8 [H, W, 3] array (libjpeg-turbo through simplejpeg:
    the same decoder and settings as PIL's, without PIL's copies); None when it cannot (CMYK...)."""
    try:
        import simplejpeg
    except ImportError:
        return None
    try:
        return simplejpeg.decode_jpeg(data, colorspace="rgb")
    except ValueError:
        return None


def _chw(img: torch.Tensor, flip: bool) -> torch.Tensor:
    """A contiguous CHW copy of a [3, S, S] uint8 image held channels-last (the resize's output, or a
    PIL image's pixels), flipped left-right when `flip`: one numpy copy, about half the time of torch's
    flip and contiguous for uint8 (the same pixels)."""
    hwc = img.permute(1, 2, 0).numpy()
    return torch.from_numpy(np.ascontiguousarray((hwc[:, ::-1] if flip else hwc).transpose(2, 0, 1)))


def decoding() -> str:
    """One line for a job's log: how this process decodes JPEGs for pretraining."""
    if jpeg_crop.decoder() is not None:
        return jpeg_crop.describe() + "; whole images through simplejpeg where a crop cannot be decoded alone"
    return f"JPEG decoding: whole images through simplejpeg ({jpeg_crop.describe()})"


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    try:
        import simplejpeg

        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        return width, height
    except (ImportError, ValueError):
        return None


class FastPretrainTransform:
    """RandomResizedCrop + flip + normalise on the bytes of an image file (or a PIL image)."""

    decodes = True  # takes the file's bytes: it decodes itself (mae.data passes them undecoded)

    def __init__(self, input_size: int, normalize: bool = True, crop_decode: bool = True):
        self.size = int(input_size)
        self.normalize = normalize
        self.crop_decode = crop_decode  # False: always decode whole JPEGs (the bench's comparison)

    def sample(self, width: int, height: int):
        i, j, h, w = crop_params(width, height)
        flip = bool(torch.rand(1) < 0.5)
        return i, j, h, w, flip

    def _resized(self, pixels: torch.Tensor, box) -> torch.Tensor:
        i, j, h, w = box
        # A channels-last view with the batch stride of a channels-last tensor ([None] before the
        # permute): torch then resizes into a channels-last output, skipping its scalar repacking
        # into planes (the same pixels; ``__call__`` makes the sample CHW-contiguous).
        crop = pixels[None, i:i + h, j:j + w].permute(0, 3, 1, 2)
        return interpolate(crop, size=(self.size, self.size), mode="bicubic", antialias=True)[0]

    def _decoded(self, data: bytes, box) -> torch.Tensor | None:
        """The crop of a JPEG at full size, resized: decoding only the box when remap_ops.so has the
        crop decoder, else the whole image; None when neither JPEG decoder takes the file."""
        crop = jpeg_crop.decoder() if self.crop_decode else None  # loaded once, then kept
        pixels = crop(data, box) if crop is not None else None
        if pixels is not None:
            return self._resized(torch.from_numpy(pixels), (0, 0, box[2], box[3]))
        pixels = _jpeg_rgb(data)
        if pixels is None:
            return None
        return self._resized(torch.from_numpy(pixels), box)  # a new, writable array: no warning

    def _from_pil(self, img: Image.Image, box, jpeg: bool) -> torch.Tensor:
        out = None
        if jpeg and dct_divisor(box[3], box[2], self.size) == 2:
            out = _half_size_crop(img, box, self.size)
        if out is None:
            out = self._resized(_pixels(img if img.mode == "RGB" else img.convert("RGB")), box)
        return out

    def __call__(self, data) -> torch.Tensor:
        if isinstance(data, Image.Image):
            img, size = data, data.size
        else:
            img, size = None, _jpeg_size(data)
        if size is None:
            img = Image.open(io.BytesIO(data))
            size = img.size
        i, j, h, w, flip = self.sample(*size)
        box = (i, j, h, w)
        out = self._decoded(data, box) if img is None and dct_divisor(w, h, self.size) == 1 else None
        if out is None:
            img = img if img is not None else Image.open(io.BytesIO(data))
            out = self._from_pil(img, box, img.format == "JPEG")
        out = _chw(out, flip)
        if not self.normalize:
            return out
        return normalize_batch(out)  # a sample [3, S, S] broadcasts like a batch

    def __repr__(self) -> str:
        return (f"FastPretrainTransform(size={self.size}, scale={SCALE}, ratio=({RATIO[0]:.4f}, {RATIO[1]:.4f}), "
                f"bicubic, flip=0.5, normalize={self.normalize})")

