"""``python -m mae.align [--steps 4] [--batch_size 4] [--half true|false] [--lr 0.05] [--seed 0]``

The CPU-vs-IPU alignment check of the reference (``scripts/alignment.py``): a tiny MAE
(``mae_vit_tiny_patch4``, tanh GELU as on IPU) runs a few SGD steps on the CPU and on one IPU from
the same weights, on the same images with the same masking noise. Per step it prints the two
losses, their relative difference and the largest relative gradient difference over the weight
tensors (IPU gradients are read from the weight update: ``(w_before - w_after) / lr``), then PASS
or FAIL against the tolerances of the precision (fp16 with ``--half true``, the default).

Exit status: 0 only when both halves ran and agreed; 1 when they ran and disagreed; 3 when only
the CPU half ran (no Poplar SDK here: nothing was compared, so ``mae.align && next`` stops).
"""
from __future__ import annotations

import argparse
import sys

from mae.errors import user_errors

#: exit status when only the CPU half ran (the IPU half needs the Poplar SDK)
EXIT_CPU_ONLY = 3

#: (loss, gradient) relative tolerances
TOLERANCES = {"fp16": (2e-2, 1e-1), "fp32": (1e-4, 1e-3)}


def make_inputs(steps: int, batch_size: int, seed: int = 0):
    """Model, images and masking noise, all from ``seed`` (the same on both halves)."""
    import torch

    from mae import models_mae

    torch.manual_seed(seed)
    model = models_mae.create_model("mae_vit_tiny_patch4", gelu_type="tanh", norm_pix_loss=True)
    gen = torch.Generator().manual_seed(seed + 1)
    images = [torch.randn(batch_size, 3, 16, 16, generator=gen) for _ in range(steps)]
    noise = [torch.rand(batch_size, model.num_patches, generator=gen) for _ in range(steps)]
    return model, images, noise


def cpu_trace(model, images, noise, lr: float, mask_ratio: float = 0.75) -> list[tuple[float, dict]]:
    """``[(loss, {name: grad}), ...]`` of plain SGD steps on the CPU in fp32."""
    import torch

    opt = torch.optim.SGD(model.parameters(), lr=lr)
    out = []
    for imgs, nz in zip(images, noise):
        opt.zero_grad()
        loss, _, _ = model(imgs, mask_ratio=mask_ratio, noise=nz)
        loss.backward()
        out.append((float(loss.detach()), {n: p.grad.detach().clone() for n, p in model.named_parameters()
                                  if p.grad is not None}))
        opt.step()
    return out


def compare(cpu: list, ipu: list, precision: str = "fp16") -> tuple[list[dict], bool]:
    """One row per step (losses, relative loss and worst gradient differences) and overall pass."""
    loss_tol, grad_tol = TOLERANCES[precision]
    rows, ok = [], True
    for step, ((l_cpu, g_cpu), (l_ipu, g_ipu)) in enumerate(zip(cpu, ipu)):
        loss_rel = abs(l_cpu - l_ipu) / max(abs(l_cpu), 1e-12)
        worst, worst_name = 0.0, ""
        for name, g in g_cpu.items():
            other = g_ipu.get(name)
            if other is None:
                continue
            rel = float((g - other.float()).norm() / max(float(g.norm()), 1e-12))
            if rel > worst:
                worst, worst_name = rel, name
        good = loss_rel <= loss_tol and worst <= grad_tol
        ok = ok and good
        rows.append({"step": step, "loss_cpu": l_cpu, "loss_ipu": l_ipu, "loss_rel": loss_rel,
                     "grad_rel": worst, "grad_worst": worst_name, "pass": good})
    return rows, ok and len(rows) == len(cpu)


def _parse(argv):
    ap = argparse.ArgumentParser(prog="python -m mae.align", description=__doc__.split("\n\n")[1])
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch_size", type=int, default=4)
    ap.add_argument("--half", choices=("true", "false"), default="true")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import copy

    from mae.ipu import SDKNotEnabled

    args = _parse(argv)
    precision = "fp16" if args.half == "true" else "fp32"
    with user_errors("mae.align"):
        model, images, noise = make_inputs(args.steps, args.batch_size, args.seed)
        start = copy.deepcopy(model)
        cpu = cpu_trace(model, images, noise, args.lr)
        for step, (loss, _) in enumerate(cpu):
            print(f"cpu step {step}: loss {loss:.6f}", flush=True)
        try:
            from mae import ipu_align

            ipu = ipu_align.ipu_trace(start, images, noise, args.lr, half=args.half == "true")
        except SDKNotEnabled:
            print("ipu half: not run; it needs the Poplar SDK (source <sdk>/enable, poptorch installed); "
                  f"nothing compared (exit {EXIT_CPU_ONLY})", flush=True)
            return EXIT_CPU_ONLY
        rows, ok = compare(cpu, ipu, precision)
        for r in rows:
            print(f"step {r['step']}: loss cpu {r['loss_cpu']:.6f} ipu {r['loss_ipu']:.6f} rel {r['loss_rel']:.2e}  "
                  f"grad rel {r['grad_rel']:.2e} ({r['grad_worst']})  {'PASS' if r['pass'] else 'FAIL'}", flush=True)
        tol = TOLERANCES[precision]
        print(f"{'PASS' if ok else 'FAIL'}: {precision} tolerances loss {tol[0]:g}, gradient {tol[1]:g}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
