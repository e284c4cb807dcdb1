"""Loading of the native library (remap_ops.so) and what torch needs around it in Python:
fake implementations (torch.compile, meta tensors) and autograd formulas for the four ops.

The library registers the schemas and the CPU (and, when built with nvcc, CUDA) kernels:
  remap::keep(x, ids_keep) -> out                remap::keep_backward(grad, ids_keep, length) -> grad_x
  remap::restore(x, ids_restore, mask_token, pos?) -> out
  remap::restore_backward(grad, ids_restore, x_rows) -> (grad_x, grad_mask_token)
The backward ops are linear maps whose adjoints are the forward ops, so double backward works too.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

DEFAULT_LIBRARY = Path(__file__).resolve().with_name("remap_ops.so")


def library_path() -> Path:
    """The library to load: $MAE_REMAP_LIB when set, else remap/remap_ops.so."""
    return Path(os.environ.get("MAE_REMAP_LIB") or DEFAULT_LIBRARY)


def load(path: Path) -> None:
    """Load the library into this process and register the Python-side parts; raises OSError/RuntimeError."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    torch.ops.load_library(str(path))
    _register()


def has_kernel(device_type: str) -> bool:
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    return key is not None and torch._C._dispatch_has_kernel_for_dispatch_key("remap::keep", key)


LIB = "remap::"


def _register() -> None:
    _register_fakes()
    _register_keep()
    _register_restore()


def _register_fakes() -> None:
    """Shapes of the four ops' outputs, for torch.compile and meta tensors."""
    @torch.library.register_fake(LIB + "keep")
    def _keep_fake(x, ids_keep):
        return x.new_empty((x.shape[0], ids_keep.shape[1], x.shape[2]))

    @torch.library.register_fake(LIB + "keep_backward")
    def _keep_backward_fake(grad, ids_keep, length):
        return grad.new_empty((grad.shape[0], length, grad.shape[2]))

    @torch.library.register_fake(LIB + "restore")
    def _restore_fake(x, ids_restore, mask_token, pos=None):
        return x.new_empty((x.shape[0], ids_restore.shape[1] + 1, x.shape[2]))

    @torch.library.register_fake(LIB + "restore_backward")
    def _restore_backward_fake(grad, ids_restore, x_rows):
        return grad.new_empty((grad.shape[0], x_rows, grad.shape[2])), grad.new_empty((grad.shape[2],))


def _register_keep() -> None:
    """keep: grad_x = scatter of grad into zeros; keep_backward's adjoint is keep."""
    ops = torch.ops.remap

    def keep_setup(ctx, inputs, output):
        x, ids_keep = inputs
        ctx.save_for_backward(ids_keep)
        ctx.length = x.shape[1]

    def keep_bwd(ctx, grad):
        (ids_keep,) = ctx.saved_tensors
        return ops.keep_backward(grad, ids_keep, ctx.length), None

    torch.library.register_autograd(LIB + "keep", keep_bwd, setup_context=keep_setup)

    def keep_backward_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[1])

    def keep_backward_bwd(ctx, gg):
        (ids_keep,) = ctx.saved_tensors
        return ops.keep(gg, ids_keep), None, None

    torch.library.register_autograd(LIB + "keep_backward", keep_backward_bwd, setup_context=keep_backward_setup)


def _restore_grad_pos(grad, pos_shape):
    """grad of pos: grad, summed over the dimensions pos was broadcast along."""
    if len(pos_shape) == 2:
        return grad.sum(0)
    if pos_shape[0] != grad.shape[0]:
        return grad.sum(0, keepdim=True)
    return grad


def _register_restore() -> None:
    """restore: grad_x = inverse gather, grad_mask = sum over the filled rows, grad_pos = grad (summed
    over the dimensions pos was broadcast along); restore_backward's adjoint is restore."""
    ops = torch.ops.remap

    def restore_setup(ctx, inputs, output):
        x, ids_restore, mask_token, pos = inputs
        ctx.save_for_backward(ids_restore)
        ctx.x_rows = x.shape[1]
        ctx.mask_shape = mask_token.shape
        ctx.pos_shape = None if pos is None else pos.shape

    def restore_bwd(ctx, grad):
        (ids_restore,) = ctx.saved_tensors
        grad_x, grad_mask = ops.restore_backward(grad, ids_restore, ctx.x_rows)
        grad_pos = None
        if ctx.pos_shape is not None and ctx.needs_input_grad[3]:
            grad_pos = _restore_grad_pos(grad, ctx.pos_shape)
        return grad_x, None, grad_mask.reshape(ctx.mask_shape), grad_pos

    torch.library.register_autograd(LIB + "restore", restore_bwd, setup_context=restore_setup)

    def restore_backward_setup(ctx, inputs, output):
        ctx.save_for_backward(inputs[1])
        ctx.x_rows = inputs[2]

    def restore_backward_bwd(ctx, gg_x, gg_mask):
        (ids_restore,) = ctx.saved_tensors
        if gg_x is None:
            gg_x = ids_restore.new_zeros((), dtype=gg_mask.dtype).expand(ids_restore.shape[0], ctx.x_rows,
                                                                         gg_mask.shape[0])
        if gg_mask is None:
            gg_mask = gg_x.new_zeros(gg_x.shape[2])
        return ops.restore(gg_x, ids_restore, gg_mask, None), None, None

    torch.library.register_autograd(LIB + "restore_backward", restore_backward_bwd,
                                    setup_context=restore_backward_setup)
