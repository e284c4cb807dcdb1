"""Pictures of a pretraining run: masked-image reconstructions and loss / lr curves (PNG, Agg).

    reconstruction_<epoch>.png   rows: original, masked, reconstruction, reconstruction + visible
                                 patches; columns: a fixed batch of validation images, always the
                                 same images and the same masking noise, so epochs compare directly
    curves.png                   loss and lr against (fractional) epoch from metrics.jsonl
                                 (plus validation top-1 for finetuning runs)

Pretraining calls :func:`on_pretrain_checkpoint` at every kept checkpoint (rank 0);
``python -m mae.visualize`` renders the same pictures for any checkpoint and run. Files are
written atomically (temp file + rename).
"""
from __future__ import annotations

import math
import os
import pathlib

import torch

from mae.data import IMAGENET_MEAN, IMAGENET_STD
from mae.fast_transforms import model_input

N_IMAGES = 8
NOISE_SEED = 0
ROW_TITLES = ("original", "masked", "reconstruction", "reconstruction\n+ visible")


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, format="png", dpi=fig.dpi)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        _matplotlib().close(fig)
    return path


def fixed_indices(length: int, n: int = N_IMAGES) -> list[int]:
    """``n`` indices spread evenly over a dataset (class folders are sorted: one per region)."""
    n = min(n, length)
    return [int(i * length / n) for i in range(n)]


def fixed_batch(dataset, n: int = N_IMAGES) -> torch.Tensor:
    """The same ``n`` images of ``dataset`` every time, as a [n, C, H, W] tensor."""
    return model_input(torch.stack([dataset[i][0] for i in fixed_indices(len(dataset), n)]))


def fixed_noise(n: int, num_patches: int, seed: int = NOISE_SEED) -> torch.Tensor:
    return torch.rand(n, num_patches, generator=torch.Generator().manual_seed(seed))


def _denormalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(1, -1, 1, 1)
    return (x * std + mean).clamp(0, 1)


@torch.no_grad()
def reconstruct(model, imgs: torch.Tensor, mask_ratio: float = 0.75, seed: int = NOISE_SEED) -> dict:
    """Run the MAE on ``imgs`` with fixed noise; images in [0, 1] for each row of the grid.

    With ``norm_pix_loss`` the prediction is in per-patch normalised units: it is mapped back
    with each original patch's mean and variance before display.
    """
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        imgs = imgs.to(device=device, dtype=torch.float32)
        noise = fixed_noise(imgs.shape[0], model.patch_embed.num_patches, seed).to(device)
        loss, pred, mask = model(imgs, mask_ratio=mask_ratio, noise=noise)
        pred = pred.float()
        if getattr(model, "norm_pix_loss", False):
            target = model.patchify(imgs)
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            pred = pred * (var + 1.0e-6) ** 0.5 + mean
        recon = model.unpatchify(pred)
        p = model.patch_embed.patch_size[0]
        mask_img = model.unpatchify(mask.unsqueeze(-1).repeat(1, 1, p * p * imgs.shape[1]))  # 1 = removed
    finally:
        model.train(was_training)
    original = _denormalize(imgs.cpu())
    recon, mask_img = _denormalize(recon.cpu()), mask_img.cpu()
    grey = torch.full_like(original, 0.5)
    return {
        "original": original,
        "masked": original * (1 - mask_img) + grey * mask_img,
        "reconstruction": recon,
        "pasted": original * (1 - mask_img) + recon * mask_img,
        "loss": float(loss),
    }


def save_reconstruction_grid(rows: dict, path, title: str = "") -> pathlib.Path:
    """A grid: one row per stage (original / masked / reconstruction / pasted), one column per image."""
    plt = _matplotlib()
    keys = ("original", "masked", "reconstruction", "pasted")
    n = rows["original"].shape[0]
    fig, axes = plt.subplots(len(keys), n, figsize=(1.3 * n + 1.2, 1.3 * len(keys) + 0.5), dpi=100,
                             squeeze=False)
    for r, key in enumerate(keys):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(rows[key][c].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(ROW_TITLES[r], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


def _x(record: dict) -> float | None:
    if "epoch" not in record:
        return None
    if "step" in record and record.get("steps"):
        return record["epoch"] + record["step"] / record["steps"]
    return record["epoch"] + 1.0


def save_curves(metrics_path, path, title: str = "") -> pathlib.Path:
    """Loss and lr (and validation top-1 when present) against epoch, from a metrics.jsonl."""
    from mae.metrics import read_jsonl

    records = read_jsonl(metrics_path)
    steps = [r for r in records if "step" in r and "loss" in r and _x(r) is not None]
    epochs = [r for r in records if "step" not in r and "loss" in r and _x(r) is not None
              and r.get("type", "epoch") == "epoch"]
    evals = [r for r in records if "val_top1" in r and "epoch" in r]
    panels = 3 if evals else 2
    plt = _matplotlib()
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.2), dpi=100, squeeze=False)
    ax_loss, ax_lr = axes[0][0], axes[0][1]
    if steps:
        ax_loss.plot([_x(r) for r in steps], [r["loss"] for r in steps], lw=0.8, alpha=0.6, label="step")
        lr_points = [(_x(r), r["lr"]) for r in steps if "lr" in r]
        ax_lr.plot([x for x, _ in lr_points], [y for _, y in lr_points], lw=1.0)
    if epochs:
        ax_loss.plot([_x(r) for r in epochs], [r["loss"] for r in epochs], "o-", ms=3, lw=1.2, label="epoch mean")
    if not steps and not epochs:
        ax_loss.text(0.5, 0.5, "no loss records yet", ha="center", va="center", transform=ax_loss.transAxes)
    finite = [r["loss"] for r in steps + epochs if math.isfinite(r["loss"])]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 20:
        ax_loss.set_yscale("log")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="training loss")
    ax_loss.grid(alpha=0.3)
    if steps or epochs:
        ax_loss.legend(fontsize=7)
    ax_lr.set(xlabel="epoch", ylabel="lr", title="learning rate")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax_lr.grid(alpha=0.3)
    if evals:
        ax = axes[0][2]
        ax.plot([r["epoch"] + 1 for r in evals], [r["val_top1"] for r in evals], "o-", ms=3)
        ax.set(xlabel="epoch", ylabel="top-1 (%)", title="validation top-1")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save_figure(fig, path)


_VAL_CACHE: dict = {}


def validation_batch(cfg, fallback_dataset=None, n: int = N_IMAGES) -> torch.Tensor:
    """The fixed picture batch of a run: from ``<data_path>/validation`` (evaluation transform),
    else from ``fallback_dataset`` (e.g. generated data). Cached per (data_path, input_size)."""
    key = (getattr(cfg, "data_path", None), cfg.input_size, bool(getattr(cfg, "generated_data", False)))
    if key not in _VAL_CACHE:
        batch = None
        if key[0] and not key[2] and (pathlib.Path(key[0]) / "validation").is_dir():
            from mae import augment, data

            val = data.build_dataset(key[0], "validation", augment.eval_transform(cfg.input_size),
                                     check_images=False)
            batch = fixed_batch(val, n)
        elif fallback_dataset is not None:
            batch = fixed_batch(fallback_dataset, n)
        if batch is None:
            raise ValueError("no validation split and no dataset to draw the picture batch from")
        _VAL_CACHE[key] = batch
    return _VAL_CACHE[key]


def render_run(model, cfg, output_dir, epoch: int, metrics_path=None, dataset=None) -> list[pathlib.Path]:
    """Write ``reconstruction_<epoch>.png`` (and ``curves.png`` when metrics exist) in output_dir."""
    output_dir = pathlib.Path(output_dir)
    imgs = validation_batch(cfg, dataset)
    rows = reconstruct(model, imgs, getattr(cfg, "mask_ratio", 0.75))
    written = [save_reconstruction_grid(
        rows, output_dir / f"reconstruction_{epoch}.png",
        f"{cfg.model}  epoch {epoch}  mask ratio {getattr(cfg, 'mask_ratio', 0.75)}  "
        f"loss {rows['loss']:.4f}")]
    if metrics_path is not None and pathlib.Path(metrics_path).is_file():
        written.append(save_curves(metrics_path, output_dir / "curves.png", f"{cfg.model}: {output_dir}"))
    return written


def on_pretrain_checkpoint(ctx) -> None:
    """Pretraining hook (rank 0, at every kept checkpoint): reconstructions and curves."""
    render_run(ctx.model, ctx.cfg, ctx.output_dir, ctx.epoch, ctx.metrics_path, ctx.dataset)
