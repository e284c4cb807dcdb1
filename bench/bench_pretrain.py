"""Pretraining throughput of MAE ViT-B/16 on this machine, fp32 and bf16, with model-FLOPs utilisation.

One training step = forward + backward + AdamW step at a fixed batch (default 16, mask ratio 0.75).
Model FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` over one forward+backward (on the
meta device, attention counted as its two matmuls) and are cross-checked by the analytic count.
The peak is a large matmul measured in the same run, per precision, before and after the timed
steps (the better of the two); MFU = achieved / peak.

    .venv/bin/python bench/bench_pretrain.py [--device auto|cpu|cuda] [--batch 16] [--steps 2]

On a CPU without native bf16 (no AVX512-BF16/AMX) bf16 matmuls are emulated and two orders of
magnitude slower; there the bf16 row shows the measured matmul peak and skips training unless
``--emulated_bf16`` is given (it would take tens of minutes).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mae.models_mae import create_model  # noqa: E402

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 in the CPU flags (oneDNN also reports bf16 support on plain AVX512,
    where it emulates the bf16 matmuls)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def analytic_train_flops(model, batch: int, mask_ratio: float) -> float:
    """2 x multiply-adds of every matmul, forward, times 3 for forward + backward."""
    length = model.num_patches
    keep = int(length * (1 - mask_ratio)) + 1  # + cls
    full = length + 1
    p2c = model.patch_embed.proj.weight[0].numel()
    d = model.pos_embed.shape[-1]
    dd = model.decoder_pos_embed.shape[-1]
    hidden = model.blocks[0].mlp.fc1.out_features
    dhidden = model.decoder_blocks[0].mlp.fc1.out_features

    def block(tokens, dim, hid):  # qkv + proj + mlp, then q@k^T and attn@v
        return tokens * (4 * dim * dim + 2 * dim * hid) + 2 * tokens * tokens * dim

    macs = length * p2c * d  # patch embedding sees every patch
    macs += len(model.blocks) * block(keep, d, hidden)
    macs += keep * d * dd  # decoder_embed
    macs += len(model.decoder_blocks) * block(full, dd, dhidden)
    macs += full * dd * p2c  # decoder_pred
    return 3 * 2 * macs * batch


def counted_train_flops(name: str, batch: int, img: int, mask_ratio: float) -> float:
    """FlopCounterMode over forward + backward on the meta device (no compute, shapes only)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # remap's note that meta tensors take the plain path
        model = create_model(name, img_size=img)
        model.set_fused_attn(False)  # plain matmuls, so attention is counted on every backend
        imgs = torch.empty(batch, 3, img, img)
        counter = FlopCounterMode(display=False)
        with counter:
            loss, _, _ = model(imgs, mask_ratio)
            loss.backward()
    return float(counter.get_total_flops())


def matmul_peak(device: str, dtype: torch.dtype, min_time: float = 1.0) -> float:
    """FLOP/s of a large square matmul (the best of a few timed batches). The side grows from 512
    until one product takes 0.1 s (or reaches 2048 on CPU, 8192 on CUDA), so slow paths stay short."""
    n, top = 512, (8192 if device == "cuda" else 2048)
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        if time.perf_counter() - t0 >= 0.1 or n >= top:
            break
        n *= 2
    best, reps = 0.0, 1
    start_all = time.perf_counter()
    while time.perf_counter() - start_all < 3 * min_time:
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync(device)
        dt = time.perf_counter() - t0
        best = max(best, 2 * n**3 * reps / dt)
        if dt < min_time / 4:
            reps *= 2
    return best


def train_rate(name: str, device: str, precision: str, batch: int, img: int, warmup: int, steps: int,
               mask_ratio: float) -> float:
    """Images per second over ``steps`` timed training steps after ``warmup`` untimed ones."""
    torch.manual_seed(0)
    model = create_model(name, img_size=img, norm_pix_loss=True).to(device).train()
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1.5e-4, betas=(0.9, 0.95))
    imgs = torch.randn(batch, 3, img, img, device=device)
    dtype = DTYPES[precision]
    cast = torch.autocast(device, dtype=dtype) if dtype is not None else nullcontext()

    def step():
        with cast:
            loss, _, _ = model(imgs, mask_ratio)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return batch * steps / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="mae_vit_base_patch16")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--input_size", type=int, default=224)
    ap.add_argument("--mask_ratio", type=float, default=0.75)
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps (default: 1 on cpu, 5 on cuda)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default: 2 on cpu, 20 on cuda)")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--emulated_bf16", action="store_true",
                    help="time bf16 training on a CPU without native bf16 (very slow)")
    args = ap.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    warmup = args.warmup if args.warmup is not None else (5 if device == "cuda" else 1)
    steps = args.steps if args.steps is not None else (20 if device == "cuda" else 2)
    precisions = [p for p in args.precisions.split(",") if p]

    native_bf16 = device == "cuda" or cpu_has_native_bf16()
    if device == "cuda":
        where = torch.cuda.get_device_name()
        torch.backends.cuda.matmul.allow_tf32 = False  # an honest fp32 peak
    else:
        cap = torch.backends.cpu.get_cpu_capability()
        where = f"CPU, {torch.get_num_threads()} threads, {cap}, native bf16: {'yes' if native_bf16 else 'no'}"
    print(f"bench_pretrain: {args.model}, batch {args.batch}, {args.input_size}px, mask {args.mask_ratio}, "
          f"{warmup} warmup + {steps} timed steps; {where}; torch {torch.__version__}", flush=True)

    counted = counted_train_flops(args.model, args.batch, args.input_size, args.mask_ratio)
    with torch.device("meta"):
        analytic = analytic_train_flops(create_model(args.model, img_size=args.input_size), args.batch,
                                        args.mask_ratio)
    per_img = counted / args.batch
    print(f"model FLOPs per training image (fwd+bwd): {per_img / 1e9:.1f} GFLOP counted "
          f"(analytic {analytic / args.batch / 1e9:.1f})", flush=True)

    rows = []
    for precision in precisions:
        dtype = DTYPES[precision] or torch.float32
        peak = matmul_peak(device, dtype)
        print(f"[{precision}] matmul peak {peak / 1e9:.1f} GFLOP/s", flush=True)
        if precision == "bf16" and device == "cpu" and not native_bf16 and not args.emulated_bf16:
            print("[bf16] training skipped: this CPU has no native bf16 (AVX512-BF16/AMX), so bf16 runs "
                  "emulated at the peak above and mae.pretrain trains in fp32 here; --emulated_bf16 times it "
                  "anyway", flush=True)
            rows.append((precision, None, None, peak, None))
            continue
        rate = train_rate(args.model, device, precision, args.batch, args.input_size, warmup, steps,
                          args.mask_ratio)
        peak = max(peak, matmul_peak(device, dtype))  # measured again after training: the better of two
        achieved = rate * per_img
        rows.append((precision, rate, achieved, peak, achieved / peak))
        print(f"[{precision}] {rate:.2f} images/s", flush=True)

    print_table(rows)
    if args.json:
        write_json(Path(args.json), args, device, where, native_bf16, per_img, rows)
    return 0


def print_table(rows: list) -> None:
    print()
    print(f"{'precision':<10}{'images/s':>10}{'model GFLOP/s':>15}{'matmul peak GFLOP/s':>21}{'MFU':>8}")
    for precision, rate, achieved, peak, mfu in rows:
        if rate is None:
            print(f"{precision:<10}{'skipped':>10}{'-':>15}{peak / 1e9:>21.1f}{'-':>8}")
        else:
            print(f"{precision:<10}{rate:>10.2f}{achieved / 1e9:>15.1f}{peak / 1e9:>21.1f}{mfu:>8.1%}")


def write_json(path: Path, args, device: str, where: str, native_bf16: bool, per_img: float, rows: list) -> None:
    reason = "this CPU has no native bf16 (no avx512_bf16 or amx_bf16): bf16 matmuls are emulated"
    doc = {"model": args.model, "batch": args.batch, "device": device, "where": where,
           "native_bf16": bool(native_bf16), "gflop_per_image": per_img / 1e9,
           "rows": [{"precision": p, "images_per_s": r, "model_flops": a, "matmul_peak_flops": pk, "mfu": m,
                     "skipped": None if r is not None else reason} for p, r, a, pk, m in rows]}
    path.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
