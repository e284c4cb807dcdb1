"""Datasets and transforms: ImageNet folder layout, synthetic images, scikit-learn's digits.

API (torch is imported lazily, so the digits command and errors stay quick)::

    pretrain_transform(input_size, normalize=True)  RandomResizedCrop(scale 0.2-1, bicubic), flip,
                                               normalise (or uint8): the fast path (mae.fast_transforms)
    reference_pretrain_transform(input_size)   the same augmentation as torchvision's PIL transforms
    eval_transform(input_size)                 resize (input/0.875, bicubic), centre crop, normalise
    build_dataset(root, split, transform, check_images=True) -> ImageFolderDataset
    preflight(root, split)                     quick layout check without torch (DataError)
    GeneratedDataset(size, input_size, num_classes=1000, seed=0)
    build_pretrain_dataset(cfg, normalize=True)  generated or <data_path>/train with pretrain_transform
    write_digits(out, input_size=32, seed=0) -> message

Layout: ``<root>/train/<class>/*`` and ``<root>/validation/<class>/*``; classes are the sorted
folder names. Bad input raises :class:`mae.errors.DataError` with one sentence: a missing root or
split folder, no class folders, an empty class folder. Corrupt image files are skipped: with
``check_images`` every file's header is opened when the dataset is built and the unreadable ones
are dropped with one warning that counts them; a file that still fails to decode at load time is
replaced by the next readable sample (a warning counts those too), so every batch keeps its size
on every rank.

Command line::

    python -m mae.data digits --out DIR [--input_size 32] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

from mae.errors import DataError, user_errors, warn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "validation")


# --- transforms --------------------------------------------------------------------------------
def pretrain_transform(input_size: int, normalize: bool = True):
    """The MAE pretraining augmentation, fast path: decodes the image itself (only the crop of a JPEG
    where remap_ops.so has the crop decoder; at reduced size when the crop allows), crops and resizes
    uint8 pixels (see mae.fast_transforms).
    normalize=False: uint8 [3, S, S] samples, normalised per batch by ``fast_transforms.model_input``."""
    from mae.fast_transforms import FastPretrainTransform

    return FastPretrainTransform(input_size, normalize=normalize)


def reference_pretrain_transform(input_size: int):
    """The reference MAE pretraining augmentation (torchvision on a decoded PIL image)."""
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    return transforms.Compose([
        transforms.RandomResizedCrop(input_size, scale=(0.2, 1.0), interpolation=InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def eval_transform(input_size: int):
    """Resize to input_size/0.875 (bicubic), centre crop, ImageNet normalisation (224 → 256 → 224)."""
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    return transforms.Compose([
        transforms.Resize(int(round(input_size / 0.875)), interpolation=InterpolationMode.BICUBIC),
        transforms.CenterCrop(input_size),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


# --- folder datasets ---------------------------------------------------------------------------
def _header_ok(path: str) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.size  # noqa: B018 - header parsed by open()
        return os.path.getsize(path) > 0
    except Exception:  # noqa: BLE001 - any failure means unreadable
        return False


def scan_folder(root, split: str) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, [(path, class_index), ...])`` of ``root/split``; DataError on bad layout."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise DataError(
            f"data path {root} does not exist; pass --data_path DIR holding train/<class>/* "
            f"(python -m mae.data digits --out {root} writes a small one) or use --generated_data"
        )
    base = root / split
    if not base.is_dir():
        raise DataError(f"{base} not found; the data path must hold {split}/<class>/<image files>")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{base} has no class folders; expected {base}/<class>/<image files>")
    samples = []
    for index, name in enumerate(classes):
        files = sorted(
            str(p) for p in (base / name).rglob("*")
            if p.suffix.lower() in IMG_EXTENSIONS and p.is_file() and not p.name.startswith(".")
        )
        if not files:
            raise DataError(f"class folder {base / name} has no image files; add images or remove the folder")
        samples.extend((f, index) for f in files)
    return classes, samples


def preflight(root, split: str) -> None:
    """Cheap layout check (no full scan, no torch): DataError on a missing root or split folder,
    no class folders, or a class folder without any image file."""
    root = pathlib.Path(root)
    if not root.is_dir():
        scan_folder(root, split)  # raises the missing-path message
    base = root / split
    if not base.is_dir():
        scan_folder(root, split)
    classes = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        scan_folder(root, split)
    for folder in classes:
        if not any(p.suffix.lower() in IMG_EXTENSIONS and not p.name.startswith(".") for p in folder.rglob("*")):
            raise DataError(f"class folder {folder} has no image files; add images or remove the folder")


class ImageFolderDataset:
    """``<root>/<split>/<class>/*`` images → ``(transform(image), class_index)``.

    Attributes like torchvision's ImageFolder: ``classes``, ``class_to_idx``, ``samples``,
    ``targets``; plus ``skipped`` (paths dropped as corrupt when built).
    """

    def __init__(self, root, split: str, transform=None, check_images: bool = True, workers: int = 16):
        self.root = pathlib.Path(root)
        self.split = split
        self.transform = transform
        self.classes, samples = scan_folder(root, split)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.skipped: list[str] = []
        if check_images:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                ok = list(pool.map(_header_ok, (p for p, _ in samples), chunksize=64))
            self.skipped = [p for (p, _), good in zip(samples, ok) if not good]
            samples = [s for s, good in zip(samples, ok) if good]
            if self.skipped:
                warn(
                    f"skipped {len(self.skipped)} corrupt image file(s) in {self.root / split} "
                    f"(first: {self.skipped[0]})"
                )
            missing = set(range(len(self.classes))) - {t for _, t in samples}
            if missing:
                name = self.classes[min(missing)]
                raise DataError(f"class folder {self.root / split / name} has no readable images; fix or remove it")
        self.samples = samples
        self.targets = [t for _, t in samples]
        self.load_failures = 0

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int):
        """(image, target); a transform with ``decodes = True`` gets the file's bytes and returns the
        sample (so it decodes them itself, at reduced size when it can)."""
        from PIL import Image

        path, target = self.samples[index]
        with open(path, "rb") as fh:
            if getattr(self.transform, "decodes", False):
                return self.transform(fh.read()), target
            img = Image.open(fh)
            img = img.convert("RGB")
        if self.transform is not None:
            img = self.transform(img)
        return img, target

    def __getitem__(self, index: int):
        n = len(self.samples)
        for attempt in range(min(n, 32)):
            i = (index + attempt) % n
            try:
                img, target = self._load(i)
                break
            except Exception:  # noqa: BLE001 - a corrupt file is replaced by the next sample
                self.load_failures += 1
                warn(
                    f"skipped corrupt image {self.samples[i][0]} at load time "
                    f"({self.load_failures} so far in this process); using the next sample"
                )
        else:
            raise DataError(f"no readable image among 32 consecutive files of {self.root / self.split}")
        return img, target


def build_dataset(root, split: str, transform=None, check_images: bool = True) -> ImageFolderDataset:
    """The ``split`` ("train" or "validation") of the ImageNet-layout dataset at ``root``."""
    return ImageFolderDataset(root, split, transform, check_images=check_images)


class GeneratedDataset:
    """Synthetic input: ``size`` random normal images [3, input_size, input_size], label index % classes.

    Deterministic per index and seed, so data order alone decides a run's trajectory.
    """

    def __init__(self, size: int, input_size: int, num_classes: int = 1000, seed: int = 0):
        self.size, self.input_size, self.num_classes, self.seed = size, input_size, num_classes, seed
        self.classes = [str(i) for i in range(num_classes)]
        self.targets = [i % num_classes for i in range(size)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        import torch

        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        img = torch.randn(3, self.input_size, self.input_size, generator=gen)
        return img, index % self.num_classes


def build_pretrain_dataset(cfg, normalize: bool = True):
    """Training set of a pretraining config: generated, or ``<data_path>/train`` augmented
    (normalize=False: uint8 images, for a loop that normalises on the device)."""
    if cfg.generated_data:
        return GeneratedDataset(cfg.generated_size, cfg.input_size, seed=cfg.seed)
    if not cfg.data_path:
        raise DataError("no data: pass --data_path DIR (holding train/<class>/*) or --generated_data")
    return build_dataset(cfg.data_path, "train", pretrain_transform(cfg.input_size, normalize), cfg.check_images)


# --- scikit-learn digits as an ImageNet-layout folder ------------------------------------------
DIGITS_MARKER = ".mae-digits.json"


def _digits_complete(out: pathlib.Path) -> dict | None:
    try:
        info = json.loads((out / DIGITS_MARKER).read_text())
    except (OSError, ValueError):
        return None
    for split in SPLITS:
        count = sum(1 for _ in (out / split).glob("*/*.png")) if (out / split).is_dir() else 0
        if count != info.get(split):
            return None
    return info


def _write_digit_split(folder: pathlib.Path, ids, digits, input_size: int) -> None:
    import numpy as np
    from PIL import Image

    for cls in range(10):
        (folder / str(cls)).mkdir(parents=True)
    for i in sorted(ids):
        pixels = np.clip(np.rint(digits.images[i] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        img = Image.fromarray(pixels).resize((input_size, input_size), Image.BICUBIC)
        img.convert("RGB").save(folder / str(digits.target[i]) / f"{i:04d}.png")


def write_digits(out, input_size: int = 32, seed: int = 0, val_fraction: float = 0.2) -> str:
    """Write scikit-learn's 1,797 digits as ``out/{train,validation}/<digit>/<index>.png``.

    8x8 grey images are scaled to ``input_size`` (bicubic) and saved as RGB PNGs; the split is
    stratified by class with ``seed``. Idempotent: a complete dataset with the same settings is
    left alone; the dataset is built in a temporary sibling folder and renamed into place.
    Returns the one-line message printed by the command.
    """
    out = pathlib.Path(out)
    info = _digits_complete(out)
    if info is not None:
        if (info.get("input_size"), info.get("seed")) != (input_size, seed):
            raise DataError(
                f"{out} holds digits at input_size {info.get('input_size')} seed {info.get('seed')}; "
                "remove it or choose another --out"
            )
        return f"{out} already holds the digits dataset ({info['train']} train, {info['validation']} validation); nothing to do"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not a complete digits dataset; remove it or choose another --out")

    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    index = np.arange(len(digits.target))
    train_idx, val_idx = train_test_split(
        index, test_size=val_fraction, stratify=digits.target, random_state=seed, shuffle=True
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    try:
        for split, ids in (("train", train_idx), ("validation", val_idx)):
            _write_digit_split(tmp / split, ids, digits, input_size)
        info = {"input_size": input_size, "seed": seed, "train": len(train_idx), "validation": len(val_idx),
                "classes": 10, "source": "sklearn.datasets.load_digits"}
        (tmp / DIGITS_MARKER).write_text(json.dumps(info, indent=1) + "\n")
        if out.is_dir():
            out.rmdir()  # empty (checked above)
        try:
            os.rename(tmp, out)
        except OSError:
            if _digits_complete(out) is None:  # lost a race to a writer that failed
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            return f"{out} already holds the digits dataset; nothing to do"
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return (
        f"wrote {len(index)} digits images ({len(train_idx)} train, {len(val_idx)} validation, "
        f"10 classes, {input_size}x{input_size} RGB) to {out}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mae.data", description="Dataset utilities.")
    sub = parser.add_subparsers(dest="command", required=True)
    dg = sub.add_parser("digits", help="write scikit-learn's digits as train/validation class folders")
    dg.add_argument("--out", required=True, help="output folder (e.g. data/digits)")
    dg.add_argument("--input_size", type=int, default=32, help="image side in pixels (default 32)")
    dg.add_argument("--seed", type=int, default=0, help="seed of the stratified 80/20 split (default 0)")
    args = parser.parse_args(argv)
    with user_errors("mae.data"):
        if args.input_size < 8:
            raise DataError(f"--input_size {args.input_size} is too small; use 8 or more")
        print(write_digits(args.out, args.input_size, args.seed), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
