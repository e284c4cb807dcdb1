"""Adam(W) state between torch and PopTorch (pure: no SDK needed, tested everywhere).

Checkpoints always hold the torch AdamW state dict (``{"state": {index: {"step", "exp_avg",
"exp_avg_sq"}}, "param_groups": [...]}``), whatever the device that wrote them, so a run can move
between CPU/GPU and IPU. On the IPU the same state lives in PopART tensors named after each
weight as the wrapped model sees it (``model.<parameter name>``):

    Accl1___model.blocks.0.attn.qkv.weight   first moment  (exp_avg)
    Accl2___model.blocks.0.attn.qkv.weight   second moment (exp_avg_sq)
    Step___model.blocks.0.attn.qkv.weight    step count, shape [1]

:func:`torch_to_ipu` turns the torch state into that ``ipu_state`` mapping (fp16 first moments when
``half``), :func:`ipu_to_torch` turns it back. ``index_names`` maps a torch state index to the
parameter name: :func:`index_names` builds it from an optimizer and its model.
"""
from __future__ import annotations

ACCL1, ACCL2, STEP = "Accl1___", "Accl2___", "Step___"
PREFIX = "model."  # the wrapped module holds the MAE / ViT model under this attribute


def index_names(optimizer, model) -> dict[int, str]:
    """``{state index: parameter name}`` in the order torch numbers parameters in a state dict."""
    names = {id(p): n for n, p in model.named_parameters()}
    out, index = {}, 0
    for group in optimizer.param_groups:
        for p in group["params"]:
            out[index] = names[id(p)]
            index += 1
    return out


def torch_to_ipu(torch_state: dict, names: dict[int, str], half: bool = False, prefix: str = PREFIX) -> dict:
    """PopART optimizer tensors from a torch AdamW state dict (empty when the state is empty)."""
    import torch

    out = {}
    for index, entry in (torch_state.get("state") or {}).items():
        name = prefix + names[int(index)]
        first = entry["exp_avg"].detach().float()
        out[ACCL1 + name] = first.half() if half else first
        out[ACCL2 + name] = entry["exp_avg_sq"].detach().float()
        out[STEP + name] = torch.tensor([float(entry["step"])], dtype=torch.float32)
    return out


def ipu_to_torch(ipu_state: dict, param_groups: list[dict], names: dict[int, str], prefix: str = PREFIX) -> dict:
    """A torch AdamW state dict from PopART optimizer tensors and the torch ``param_groups``
    (as in ``optimizer.state_dict()["param_groups"]``: parameters given by index)."""
    import torch

    state = {}
    for index, pname in names.items():
        name = prefix + pname
        if ACCL1 + name not in ipu_state:
            continue
        state[index] = {
            "step": torch.tensor(float(ipu_state[STEP + name].reshape(-1)[0])),
            "exp_avg": ipu_state[ACCL1 + name].detach().float().clone(),
            "exp_avg_sq": ipu_state[ACCL2 + name].detach().float().clone(),
        }
    return {"state": state, "param_groups": [dict(g) for g in param_groups]}


def group_hyper(torch_groups: list[dict], keys=("lr", "weight_decay", "betas", "eps")) -> list[dict]:
    """The hyper-parameters of each torch param group that PopTorch's AdamW accepts."""
    return [{k: g[k] for k in keys if k in g} for g in torch_groups]
