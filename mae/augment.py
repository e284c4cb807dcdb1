"""Finetuning and evaluation transforms (facebookresearch/mae ``util/datasets.build_transform``).

Train: timm ``create_transform`` — RandomResizedCrop (bicubic), flip, RandAugment
``rand-m9-mstd0.5-inc1``, ImageNet normalisation, random erasing (pixel mode).
Eval: resize to ``input_size / crop_pct`` (bicubic; crop_pct 0.875 up to 224, i.e. 256 for 224),
centre crop ``input_size``, ImageNet normalisation. Sizes scale with ``input_size``.
"""
from __future__ import annotations

from PIL import Image, ImageOps
from timm.data import auto_augment, create_transform
from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision import transforms
from torchvision.transforms import InterpolationMode

EVAL_CROP_PCT = 224 / 256  # 0.875


def _posterize(img, bits_to_keep, **__):
    """timm's posterize, also for 0 bits: RandAugment ``inc1`` at magnitude 10 (reached by
    ``mstd0.5`` around m9) asks for 0 bits, which Pillow >= 13 rejects while older Pillow
    returned a black image. Keep the older result so the recipe runs on any Pillow."""
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


for _name in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal"):
    auto_augment.NAME_TO_OP[_name] = _posterize


def eval_resize_size(input_size: int) -> int:
    crop_pct = EVAL_CROP_PCT if input_size <= 224 else 1.0
    return int(input_size / crop_pct)


def train_transform(input_size: int, *, aa: str | None = "rand-m9-mstd0.5-inc1",
                    color_jitter: float | None = None, reprob: float = 0.25,
                    remode: str = "pixel", recount: int = 1, hflip: float = 0.5,
                    min_crop_scale: float = 0.08):
    """The finetuning transform of the reference recipe (timm create_transform)."""
    return create_transform(
        input_size=input_size, is_training=True, color_jitter=color_jitter, auto_augment=aa or None,
        interpolation="bicubic", re_prob=reprob, re_mode=remode, re_count=recount,
        mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, hflip=hflip,
        scale=(min_crop_scale, 1.0))


def eval_transform(input_size: int):
    """The reference evaluation transform: resize input_size/0.875 bicubic, centre crop input_size."""
    return transforms.Compose([
        transforms.Resize(eval_resize_size(input_size), interpolation=InterpolationMode.BICUBIC),
        transforms.CenterCrop(input_size),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD),
    ])


def build_transform(is_train: bool, cfg) -> object:
    """Transform from a config object/namespace (keys: input_size, aa, color_jitter, reprob, ...)."""
    if not is_train:
        return eval_transform(cfg.input_size)
    get = lambda key, default: getattr(cfg, key, default)  # noqa: E731
    return train_transform(
        cfg.input_size, aa=get("aa", "rand-m9-mstd0.5-inc1"), color_jitter=get("color_jitter", None),
        reprob=get("reprob", 0.25), remode=get("remode", "pixel"), recount=get("recount", 1),
        hflip=get("hflip", 0.5), min_crop_scale=get("min_crop_scale", 0.08))
