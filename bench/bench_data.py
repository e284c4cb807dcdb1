"""Pretraining input pipeline: the reference (PIL decode, torchvision RandomResizedCrop + flip +
ToTensor + Normalize) against mae's fast path (mae.fast_transforms), in the same run, on one core.

Images: ImageNet-sized JPEGs made from scikit-image's photos (bench/photos.py). Each pipeline reads
the files through mae.data's folder dataset and stacks batches of --batch images, as a loader
worker does; torch runs one thread, so img/s is per core. In each of --rounds rounds the pipelines
take turns batch by batch (same seed, same crops; the order rotates), so a shared machine's changes
of speed reach every pipeline alike (turns of 8 images: a few tens of milliseconds each); the figure
is each one's median round, in wall-clock time and in this process's CPU time (on a shared machine
the wall clock also counts the time other processes held the core; the CPU-time figure leaves that
out).

    .venv/bin/python bench/bench_data.py [--images 64] [--rounds 9] [--batch 8] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import torch  # noqa: E402

from mae import data, fast_transforms  # noqa: E402
from photos import write_photos  # noqa: E402


PIPELINES = {
    "reference": "PIL decode, torchvision RandomResizedCrop + flip + ToTensor + Normalize, per sample",
    "fast": "mae.fast_transforms, normalised per sample",
    "fast_uint8_batch_norm": "uint8 samples, the batch normalised on this core (pretraining on a CPU; "
                             "the IPU loop's loader workers)",
    "fast_uint8": "uint8 samples; the batch is normalised on the GPU after the copy (pretraining on CUDA)",
    "fast_uint8_whole_jpeg": "fast_uint8 decoding whole JPEGs (no crop decoding: remap_ops.so built without "
                             "libjpeg-turbo's headers)",
}


def folder_dataset(root: Path, count: int) -> Path:
    write_photos(root / "train" / "photos", count)
    return root


def one_batch(dataset, start: int, batch: int, finish=None) -> int:
    samples = torch.stack([dataset[k][0] for k in range(start, min(start + batch, len(dataset)))])
    if finish is not None:
        samples = finish(samples)
    return samples.shape[0]


def one_round(sets: dict, finishes: dict, batch: int, times: dict, cpu_times: dict) -> None:
    """Every pipeline through every image once, batch by batch: at each batch the pipelines take
    turns (the order rotates), each drawing from the same seed, so all see the same crops and the
    same moments of a shared machine's speed; adds each one's seconds to `times` and `cpu_times`."""
    names = list(sets)
    for b, start in enumerate(range(0, len(next(iter(sets.values()))), batch)):
        for name in names[b % len(names):] + names[:b % len(names)]:
            torch.manual_seed(b)
            t0, c0 = time.perf_counter(), time.process_time()
            one_batch(sets[name], start, batch, finishes[name])
            times[name] += time.perf_counter() - t0
            cpu_times[name] += time.process_time() - c0


def measure(root: Path, rounds: int, batch: int, size: int = 224) -> dict:
    pipelines = {
        "reference": (data.reference_pretrain_transform(size), None),
        "fast": (data.pretrain_transform(size), None),
        "fast_uint8_batch_norm": (fast_transforms.FastPretrainTransform(size, normalize=False),
                                  fast_transforms.normalize_batch),
        "fast_uint8": (fast_transforms.FastPretrainTransform(size, normalize=False), None),
        "fast_uint8_whole_jpeg": (fast_transforms.FastPretrainTransform(size, normalize=False, crop_decode=False),
                                  None),
    }
    sets = {name: data.build_dataset(root, "train", t, check_images=False) for name, (t, _) in pipelines.items()}
    finishes = {name: finish for name, (_, finish) in pipelines.items()}
    n = len(sets["reference"])
    warm = {name: 0.0 for name in pipelines}
    one_round(sets, finishes, batch, dict(warm), dict(warm))  # warm-up: page cache, first-call costs
    times, cpu_times = {name: [] for name in pipelines}, {name: [] for name in pipelines}
    for _ in range(rounds):
        wall, cpu = dict(warm), dict(warm)
        one_round(sets, finishes, batch, wall, cpu)
        for name in pipelines:
            times[name].append(n / wall[name])
            cpu_times[name].append(n / cpu[name])
    rates = {name: statistics.median(v) for name, v in times.items()}
    cpu_rates = {name: statistics.median(v) for name, v in cpu_times.items()}
    return {"images": n, "pipelines": PIPELINES, "decoding": fast_transforms.decoding(), "rounds": rounds,
            "batch": batch, "threads": torch.get_num_threads(),
            "img_per_s_per_core": rates, "ratio": {k: v / rates["reference"] for k, v in rates.items()},
            "cpu_img_per_s": cpu_rates, "cpu_ratio": {k: v / cpu_rates["reference"] for k, v in cpu_rates.items()},
            "rounds_img_per_s": times, "rounds_cpu_img_per_s": cpu_times}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--batch", type=int, default=8,
                    help="images per batch, and so per turn: small turns keep the pipelines side by side")
    ap.add_argument("--data", default=None, help="folder for the JPEGs (default: a temporary folder)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        root = folder_dataset(Path(args.data or tmp), args.images)
        result = measure(root, args.rounds, args.batch)
    result["cpu_count"] = os.cpu_count()
    print(f"pretraining input pipeline, {result['images']} ImageNet-sized JPEGs, 224x224, one core "
          f"(median of {args.rounds} rounds, pipelines taking turns batch by batch); {result['decoding']}:")
    for name, rate in result["img_per_s_per_core"].items():
        print(f"  {name:24s} {rate:8.1f} img/s   {result['ratio'][name]:.2f}x the reference   "
              f"(CPU time: {result['cpu_img_per_s'][name]:.1f} img/s, {result['cpu_ratio'][name]:.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
