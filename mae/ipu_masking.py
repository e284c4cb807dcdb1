"""MAE masking for the IPU as the reference does it: index work on the host, matmuls on the device.

Gathers and argsorts are slow and memory-hungry on an IPU, so Graphcore's MAE example builds, per
sample on the host (``util/datasets.py`` ``generate_mask_patches``), a keep matrix and a restore
matrix of ones and zeros, and the device masks with matmuls (``core/models_mae.py``
``random_masking`` / ``forward_decoder`` with ``keep_mat`` / ``restore_mat``). Its loss takes the
target from the host and is computed from fp32 values (``MaeLoss``: ``pred.float()``), so the
static loss scale of the fp16 configs (2^23, beyond fp16's 65504) never meets an fp16 loss.

    collate = MaskingCollate(model, mask_ratio, half)        # loader collate_fn (in the workers)
    imgs, target, keep, restore, mask = collate(samples)     # the inputs of one training call
    keep, restore, mask = host_masks(noise, mask_ratio)      # from [N, L] noise: same choice as
                                                             # MaskedAutoencoderViT.random_masking
    pred = matmul_forward(model, imgs, keep, restore)        # no gather, no argsort on the device
    loss = fp32_loss(pred, target, mask)

Pure PyTorch: no SDK needed, tested everywhere against the model's own (gather) forward.
"""
from __future__ import annotations

import torch


def host_masks(noise: torch.Tensor, mask_ratio: float, dtype: torch.dtype = torch.float32):
    """``(keep [N, L, K], restore [N, L, L], mask [N, L])`` from masking noise [N, L].

    The K = int(L * (1 - mask_ratio)) patches of smallest noise are kept, as in
    :meth:`mae.models_mae.MaskedAutoencoderViT.random_masking`. ``keep[n, ids_keep[k], k] = 1``,
    ``restore[n, ids_restore[j], j] = 1``; ``mask`` (fp32) is 1 on removed patches.
    """
    n, length = noise.shape
    len_keep = int(length * (1 - mask_ratio))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    keep = torch.zeros(n, length, len_keep, dtype=dtype)
    keep.scatter_(1, ids_shuffle[:, :len_keep].unsqueeze(1), 1.0)
    restore = torch.zeros(n, length, length, dtype=dtype)
    restore.scatter_(1, ids_restore.unsqueeze(1), 1.0)
    mask = torch.ones(n, length)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    return keep, restore, mask


def host_target(model, imgs: torch.Tensor) -> torch.Tensor:
    """The fp32 pixel target [N, L, p*p*C] (per-patch normalised when the model's norm_pix_loss)."""
    target = model.patchify(imgs.float())
    if model.norm_pix_loss:
        mean = target.mean(dim=-1, keepdim=True)
        var = target.var(dim=-1, keepdim=True)
        target = (target - mean) / (var + 1.0e-6) ** 0.5
    return target


def host_inputs(model, imgs: torch.Tensor, noise: torch.Tensor, mask_ratio: float, half: bool = False):
    """``(imgs, target, keep, restore, mask)`` of one training call, from fp32 images and noise."""
    dtype = torch.float16 if half else torch.float32
    keep, restore, mask = host_masks(noise, mask_ratio, dtype)
    return imgs.to(dtype), host_target(model, imgs), keep, restore, mask


def matmul_forward(model, imgs: torch.Tensor, keep: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
    """The MAE prediction [N, L, p*p*C], masking and unshuffling by matmuls with ``keep``/``restore``."""
    x = model.patch_embed(imgs) + model.pos_embed[:, 1:, :]
    x = keep.transpose(1, 2) @ x                                   # [N, K, D]: the kept patches
    cls = model.cls_token + model.pos_embed[:, :1, :]
    x = torch.cat((cls.expand(x.shape[0], -1, -1), x), dim=1)
    for blk in model.blocks:
        x = blk(x)
    x = model.decoder_embed(model.norm(x))
    length = restore.shape[1]
    tokens = model.mask_token.expand(x.shape[0], length + 1 - x.shape[1], -1)
    x_ = restore.transpose(1, 2) @ torch.cat((x[:, 1:, :], tokens), dim=1)  # [N, L, D] unshuffled
    x = torch.cat((x[:, :1, :], x_), dim=1) + model.decoder_pos_embed
    for blk in model.decoder_blocks:
        x = blk(x)
    return model.decoder_pred(model.decoder_norm(x))[:, 1:, :]


def fp32_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per patch over the removed patches, computed in fp32."""
    loss = ((pred.float() - target.float()) ** 2).mean(dim=-1)
    mask = mask.float()
    return (loss * mask).sum() / mask.sum()


class MaskingCollate:
    """``collate_fn`` of the IPU pretraining loader: normalised images (fp16 when ``half``), the fp32
    target, and fresh keep/restore/mask matrices per sample, all built in the loader's workers."""

    def __init__(self, model, mask_ratio: float, half: bool = False):
        self.patch_size = model.patch_embed.patch_size[0]
        self.in_chans, self.norm_pix_loss = model.in_chans, model.norm_pix_loss
        self.num_patches, self.mask_ratio, self.half = model.num_patches, float(mask_ratio), half

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        n, c, side, _ = imgs.shape
        p, h = self.patch_size, side // self.patch_size
        x = imgs.reshape(n, c, h, p, h, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(n, h * h, p * p * c)

    def __call__(self, samples):
        from mae import fast_transforms

        imgs, _ = fast_transforms.collate_normalized(samples)
        noise = torch.rand(imgs.shape[0], self.num_patches)
        return host_inputs(self, imgs, noise, self.mask_ratio, self.half)
