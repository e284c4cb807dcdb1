"""Benchmark: the native remap ops against the plain PyTorch path, forward + backward, at ViT-B shapes
(N=64, L=196, K=49; D=768 for the encoder keep, D=512 for the decoder restore with the position
embedding), on CPU and on CUDA when available. Prints a table of median times and speedups.

    python bench/bench_remap.py [--reps 30] [--threads T] [--device cpu|cuda|all] [--dtype float32|bfloat16]

Builds remap/remap_ops.so first when it is missing (make -C remap). Torch's default thread count is
used unless --threads is given.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import remap  # noqa: E402
from remap import reference  # noqa: E402

N, L, K = 64, 196, 49
D_ENC, D_DEC = 768, 512


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def median_ms(steps, device: str, reps: int, warmup: int = 3) -> list[float]:
    """Median milliseconds of each step; the steps take turns so that load on the machine hits them alike."""
    for _ in range(warmup):
        for step in steps:
            step()
    sync(device)
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(reps):
        for step, acc in zip(steps, times):
            t0 = time.perf_counter()
            step()
            sync(device)
            acc.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def cases(device: str, dtype: torch.dtype):
    gen = torch.Generator().manual_seed(0)
    shuffle = torch.rand(N, L, generator=gen).argsort(1)
    ids_keep, ids_restore = shuffle[:, :K].to(device), shuffle.argsort(1).to(device)

    x_enc = torch.randn(N, L, D_ENC, generator=gen).to(device, dtype).requires_grad_()
    g_enc = torch.randn(N, K, D_ENC, generator=gen).to(device, dtype)
    x_dec = torch.randn(N, 1 + K, D_DEC, generator=gen).to(device, dtype).requires_grad_()
    mask = torch.randn(1, 1, D_DEC, generator=gen).to(device, dtype).requires_grad_()
    pos = torch.randn(1, 1 + L, D_DEC, generator=gen).to(device, dtype).requires_grad_()
    g_dec = torch.randn(N, 1 + L, D_DEC, generator=gen).to(device, dtype)

    def keep_step(impl):
        def step():
            x_enc.grad = None
            impl.keep(x_enc, ids_keep).backward(g_enc)
        return step

    def restore_step(impl, with_pos: bool):
        def step():
            x_dec.grad = mask.grad = pos.grad = None
            impl.restore(x_dec, ids_restore, mask.reshape(-1), pos if with_pos else None).backward(g_dec)
        return step

    yield f"encoder keep      [{N},{L},{D_ENC}] -> K={K}", keep_step
    yield f"decoder restore   [{N},1+{K},{D_DEC}] -> 1+{L}, +pos", lambda impl: restore_step(impl, True)
    yield f"decoder restore   [{N},1+{K},{D_DEC}] -> 1+{L}, no pos", lambda impl: restore_step(impl, False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()

    if not remap.available():
        print("remap_ops.so not loaded; building it with make -C remap", flush=True)
        subprocess.run(["make", "-C", str(ROOT / "remap"), f"PYTHON={sys.executable}"], check=True)
        if not remap.load():
            print(remap.status(), file=sys.stderr)
            return 1
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not (torch.cuda.is_available() and remap._kernels.get("cuda")):
        why = "no CUDA device" if not torch.cuda.is_available() else "remap_ops.so built without CUDA"
        print(f"cuda: skipped ({why})")
        devices.remove("cuda")

    print(remap.status())
    print(f"torch {torch.__version__}, {args.dtype}, forward + backward, median of {args.reps}; "
          f"torch threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    header = f"{'device':6} {'case':48} {'plain ms':>9} {'native ms':>10} {'speedup':>8}"
    print(header)
    print("-" * len(header))
    remap.set_mode("require")
    rows = []
    for device in devices:
        for name, make_step in cases(device, dtype):
            plain, native = median_ms([make_step(reference), make_step(remap)], device, args.reps)
            print(f"{device:6} {name:48} {plain:9.3f} {native:10.3f} {plain / native:7.2f}x", flush=True)
            rows.append({"device": device, "case": " ".join(name.split()), "plain_ms": plain, "native_ms": native})
    if args.json:
        Path(args.json).write_text(json.dumps({"dtype": args.dtype, "threads": torch.get_num_threads(),
                                               "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
