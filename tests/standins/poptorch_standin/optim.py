"""STAND-IN (tests only) for ``poptorch.optim``: torch's optimizers with PopTorch's extra keywords.

Signatures from PopTorch 3.3 (python/optim.py). The IPU-side state is exposed as PopTorch names it
in ``state_dict()["ipu_state"]`` (``Accl1___<param>``, ``Accl2___<param>``, ``Step___<param>``) once a
model owns the optimizer; state loaded before that is applied when the model is built, as PopTorch
sends a loaded state at compile time.
"""
from __future__ import annotations

import torch


class Optimizer:
    """Mixin: loss scaling, accumulator types, ``ipu_state`` in the state dict."""

    def _standin_init(self, loss_scaling, accum_types: dict):
        self.loss_scaling = 1.0 if loss_scaling is None else float(loss_scaling)
        self.accum_types = accum_types
        self._names: dict[int, str] | None = None   # id(param) -> name, set by trainingModel
        self._pending_ipu_state: dict = {}

    def _ipu_state(self) -> dict:
        if self._names is None:
            return {}
        out = {}
        for p, st in self.state.items():
            name = self._names[id(p)]
            if "exp_avg" in st:
                out["Accl1___" + name] = st["exp_avg"].clone()
                out["Accl2___" + name] = st["exp_avg_sq"].clone()
                out["Step___" + name] = torch.tensor([float(st["step"])])
        return out

    def _apply_pending(self) -> None:
        by_name = {n: p for p in (q for g in self.param_groups for q in g["params"])
                   for n in [self._names[id(p)]]}
        for key, value in self._pending_ipu_state.items():
            kind, _, name = key.partition("___")
            p = by_name[name]
            st = self.state[p]
            if kind == "Accl1":
                st["exp_avg"] = value.to(p.dtype).clone()
            elif kind == "Accl2":
                st["exp_avg_sq"] = value.to(p.dtype).clone()
            elif kind == "Step":
                st["step"] = torch.tensor(float(value.reshape(-1)[0]))
        self._pending_ipu_state = {}

    def state_dict(self):
        sd = torch.optim.Optimizer.state_dict(self)
        return {**sd, "ipu_state": self._ipu_state(), "ipu_param": {}}

    def load_state_dict(self, state):
        state = dict(state)
        self._pending_ipu_state = dict(state.pop("ipu_state", None) or {})
        state.pop("ipu_param", None)
        torch.optim.Optimizer.load_state_dict(self, state)
        if self._names is not None:
            self._apply_pending()


class AdamW(Optimizer, torch.optim.AdamW):
    def __init__(self, params, lr=None, betas=None, eps=None, weight_decay=None, amsgrad=None, maximize=None,
                 foreach=None, capturable=None, differentiable=None, fused=None, loss_scaling=None,
                 bias_correction=None, accum_type=None, first_order_momentum_accum_type=None,
                 second_order_momentum_accum_type=None, max_grad_norm=None) -> None:
        if amsgrad:
            raise ValueError("AMSGrad is currently not supported")  # optim.py AdamW docstring
        torch.optim.AdamW.__init__(self, params, lr=1e-3 if lr is None else lr,
                                   betas=(0.9, 0.999) if betas is None else betas, eps=1e-8 if eps is None else eps,
                                   weight_decay=1e-2 if weight_decay is None else weight_decay, foreach=False)
        self._standin_init(loss_scaling, {"accum_type": accum_type, "first": first_order_momentum_accum_type,
                                          "second": second_order_momentum_accum_type})


class SGD(Optimizer, torch.optim.SGD):
    def __init__(self, params, lr, momentum=None, dampening=None, weight_decay=None, nesterov=None,
                 maximize=None, foreach=None, differentiable=None, loss_scaling=None, velocity_scaling=None,
                 use_combined_accum=None, accum_type=None, velocity_accum_type=None, max_grad_norm=None) -> None:
        torch.optim.SGD.__init__(self, params, lr=lr, momentum=momentum or 0.0,
                                 weight_decay=weight_decay or 0.0, foreach=False)
        self._standin_init(loss_scaling, {"accum_type": accum_type, "velocity": velocity_accum_type})
