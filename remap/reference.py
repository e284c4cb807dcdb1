"""The plain PyTorch path of the remap ops. It defines their exact semantics and is the fallback."""
from __future__ import annotations

import torch


def keep(x: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """Gather the kept tokens: x[N, L, D], ids_keep[N, K] -> [N, K, D]."""
    d = x.shape[-1]
    return torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))


def restore(x: torch.Tensor, ids_restore: torch.Tensor, mask_token: torch.Tensor,
            pos: torch.Tensor | None = None) -> torch.Tensor:
    """Unshuffle visible tokens and fill the removed ones with the mask token.

    x[N, 1+K, D] holds the cls token first, then the K visible tokens in shuffled order;
    ids_restore[N, L]; mask_token broadcastable to [D]; pos broadcastable to [N, 1+L, D] or None.
    Returns [N, 1+L, D]: the cls token unchanged, then the L tokens in original order (+ pos).
    """
    n, k1, d = x.shape
    length = ids_restore.shape[1]
    mask_tokens = mask_token.reshape(1, 1, d).to(x.dtype).expand(n, length + 1 - k1, d)
    x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
    x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, d))
    out = torch.cat([x[:, :1, :], x_], dim=1)
    if pos is not None:
        out = out + pos
    return out
