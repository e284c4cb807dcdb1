"""The pretraining augmentation on uint8 tensors, decoding JPEGs at reduced size when the crop allows.

Same distribution as the reference (``mae.data.reference_pretrain_transform``): RandomResizedCrop
(scale 0.2-1, ratio 3/4-4/3, bicubic with antialiasing) then a horizontal flip with p = 0.5, drawn
from torch's generator in the reference's order (torchvision's own ``get_params``, then
``torch.rand(1) < 0.5``), so a seed gives the reference's crops and flips. What differs is the work:

  - the crop is chosen from the JPEG header alone (size without decoding), and JPEGs are decoded
    by libjpeg-turbo straight into a numpy array (simplejpeg: PIL's decoder settings, none of its
    copies); other formats, and JPEGs simplejpeg refuses (CMYK), go through PIL;
  - when the crop is at least twice the output side in both directions, libjpeg decodes the image
    at half size through its DCT scaling (PIL ``draft``) and the crop box is mapped onto it exactly:
    a quarter of the pixels decoded and resized, and the crop is still only ever scaled down;
  - the crop and resize run on the decoded uint8 pixels in place (a channels-last view, torch's
    vectorised antialiased bicubic kernel), with no crop copy and no float image;
  - normalisation is one fused pass per sample, or one per batch (``normalize=False`` gives uint8
    CHW tensors; ``normalize_batch`` turns a uint8 batch into the normalised float batch).

API::

    t = FastPretrainTransform(input_size)     t(file_bytes or PIL image) -> float [3, S, S]
    t.sample(width, height) -> (i, j, h, w, flip)   the random draw alone
    normalize_batch(uint8 [N, 3, S, S]) -> float [N, 3, S, S]
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image
from torch.nn.functional import interpolate
from torchvision.transforms import RandomResizedCrop

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SCALE = (0.2, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
_MEAN255 = torch.tensor(IMAGENET_MEAN).mul(255.0).view(3, 1, 1)
_INV_STD255 = torch.tensor(IMAGENET_STD).mul(255.0).reciprocal().view(3, 1, 1)


def _size_only(width: int, height: int) -> torch.Tensor:
    """A [1, height, width] tensor without memory: torchvision's get_params only reads its size."""
    return torch.empty(1, 1, 1, dtype=torch.uint8).expand(1, height, width)


def dct_divisor(width: int, height: int, out: int) -> int:
    """2 when a width x height crop still covers 2*out x 2*out (decode at half size), else 1.

    libjpeg's DCT scaling to 1/2 is a clean 2:1 reduction; at 1/4 and 1/8 its chroma and filter
    drift visibly from an antialiased bicubic resize, so those are not used."""
    return 2 if width >= 2 * out and height >= 2 * out else 1


def normalize_batch(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 3, H, W] -> float, (x / 255 - mean) / std, in one pass over the batch."""
    return batch.float().sub_(_MEAN255).mul_(_INV_STD255)


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

    def __init__(self, input_size: int, normalize: bool = True):
        self.size = int(input_size)
        self.normalize = normalize

    def sample(self, width: int, height: int):
        i, j, h, w = RandomResizedCrop.get_params(_size_only(width, height), list(SCALE), list(RATIO))
        flip = bool(torch.rand(1) < 0.5)
        return i, j, h, w, flip

    def _resized(self, pixels: torch.Tensor, box) -> torch.Tensor:
        i, j, h, w = box
        crop = pixels.permute(2, 0, 1)[None, :, i:i + h, j:j + w]  # a channels-last view: no copy
        return interpolate(crop, size=(self.size, self.size), mode="bicubic", antialias=True)[0]

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
        pixels = None
        if img is None and dct_divisor(w, h, self.size) == 1:
            pixels = _jpeg_rgb(data)
        if pixels is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                out = self._resized(torch.from_numpy(pixels), box)
        else:
            img = img if img is not None else Image.open(io.BytesIO(data))
            out = self._from_pil(img, box, img.format == "JPEG")
        if flip:
            out = out.flip(-1)
        out = out.contiguous()  # interpolate keeps the channels-last layout: make it CHW while uint8
        if not self.normalize:
            return out
        return out.float().sub_(_MEAN255).mul_(_INV_STD255)

    def __repr__(self) -> str:
        return (f"FastPretrainTransform(size={self.size}, scale={SCALE}, ratio=({RATIO[0]:.4f}, {RATIO[1]:.4f}), "
                f"bicubic, flip=0.5, normalize={self.normalize})")

