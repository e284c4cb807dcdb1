"""Fixed 2-D sine-cosine position embeddings, as in the reference MAE (and MoCo v3).

The grid is built width-first and the first half of the channels encodes ``grid[0]``: this order
is what released checkpoints were trained with, so it must not change. Values are computed in
float64 with NumPy (as the reference does) and cast to float32 by the caller.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def get_1d_sincos_pos_embed_from_grid(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """pos: positions of any shape (flattened to M) -> [M, embed_dim] (sin half, then cos half)."""
    if embed_dim % 2:
        raise ValueError(f"sin-cos position embedding needs an even dimension, got {embed_dim}")
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega  # [D/2]
    out = np.einsum("m,d->md", pos.reshape(-1), omega)  # [M, D/2], outer product
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed_from_grid(embed_dim: int, grid: np.ndarray) -> np.ndarray:
    """grid: [2, 1, H, W] -> [H*W, embed_dim]; first half of the channels from grid[0]."""
    if embed_dim % 2:
        raise ValueError(f"sin-cos position embedding needs an even dimension, got {embed_dim}")
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])
    return np.concatenate([emb_h, emb_w], axis=1)


def get_2d_sincos_pos_embed(embed_dim: int, grid_size: int, cls_token: bool = False) -> np.ndarray:
    """[grid_size**2 (+1), embed_dim] float64; with ``cls_token`` a zero row comes first."""
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # width goes first
    grid = np.stack(grid, axis=0).reshape([2, 1, grid_size, grid_size])
    pos_embed = get_2d_sincos_pos_embed_from_grid(embed_dim, grid)
    if cls_token:
        pos_embed = np.concatenate([np.zeros([1, embed_dim]), pos_embed], axis=0)
    return pos_embed


def sincos_pos_embed_tensor(embed_dim: int, grid_size: int, cls_token: bool = True) -> torch.Tensor:
    """The embedding as a float32 tensor of shape [1, grid_size**2 (+1), embed_dim]."""
    return torch.from_numpy(get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token)).float().unsqueeze(0)


def interpolate_pos_embed(model: torch.nn.Module, checkpoint_model: dict, key: str = "pos_embed") -> bool:
    """Resize ``checkpoint_model[key]`` in place to ``model``'s patch grid (bicubic), keeping the
    extra (cls) tokens unchanged. For loading a checkpoint trained at another image size.

    Returns True when the embedding was resized, False when it already matched or is absent.
    """
    if key not in checkpoint_model:
        return False
    pos_embed_checkpoint = checkpoint_model[key]
    embedding_size = pos_embed_checkpoint.shape[-1]
    num_patches = model.patch_embed.num_patches
    num_extra_tokens = getattr(model, key).shape[-2] - num_patches
    orig_size = int(round((pos_embed_checkpoint.shape[-2] - num_extra_tokens) ** 0.5))
    new_size = int(round(num_patches**0.5))
    if orig_size == new_size:
        return False
    extra_tokens = pos_embed_checkpoint[:, :num_extra_tokens]
    pos_tokens = pos_embed_checkpoint[:, num_extra_tokens:]
    pos_tokens = pos_tokens.reshape(-1, orig_size, orig_size, embedding_size).permute(0, 3, 1, 2)
    pos_tokens = F.interpolate(pos_tokens.float(), size=(new_size, new_size), mode="bicubic",
                               align_corners=False).to(pos_embed_checkpoint.dtype)
    pos_tokens = pos_tokens.permute(0, 2, 3, 1).flatten(1, 2)
    checkpoint_model[key] = torch.cat((extra_tokens, pos_tokens), dim=1)
    return True
