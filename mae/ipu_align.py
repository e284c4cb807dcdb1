"""The IPU half of :mod:`mae.align` (needs the Poplar SDK): the same SGD steps on one IPU."""
from __future__ import annotations

from mae import ipu, ipu_masking


def ipu_trace(model, images, noise, lr: float, half: bool = True, mask_ratio: float = 0.75) -> list:
    """``[(loss, {name: grad}), ...]``; gradients from the weight update ``(before - after) / lr``."""
    poptorch = ipu.require_poptorch()
    import torch

    names = [n for n, _ in model.named_parameters()]
    opts = poptorch.Options()
    opts.randomSeed(0)
    if half:
        opts.Precision.setPartialsType(torch.float16)
        model.half()
    step = ipu.IPUTrainingStep(model)
    optimizer = poptorch.optim.SGD(model.parameters(), lr=lr, momentum=0.0, loss_scaling=1.0,
                                   accum_type=torch.float16 if half else torch.float32)
    training = poptorch.trainingModel(step, options=opts, optimizer=optimizer)
    out = []
    try:
        for imgs, nz in zip(images, noise):
            before = {n: p.detach().float().clone() for n, p in model.named_parameters()}
            inputs = ipu_masking.host_inputs(model, imgs, nz, mask_ratio, half)  # the CPU half's masking
            loss = float(training(*inputs).float().mean())
            training.copyWeightsToHost()
            after = dict(model.named_parameters())
            out.append((loss, {n: (before[n] - after[n].detach().float()) / lr for n in names}))
    finally:
        training.detachFromDevice()
    return out
