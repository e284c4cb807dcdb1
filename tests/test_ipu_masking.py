"""IPU masking as the reference does it (mae.ipu_masking): matrices built on the host, matmuls on the
device, the loss in fp32; the same numbers as the model's own gather path."""
from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from mae import ipu, ipu_masking
from mae.models_mae import create_model

pytestmark = pytest.mark.sdk_compat


def _inputs(model, n=3, seed=0, half=False):
    gen = torch.Generator().manual_seed(seed)
    imgs, noise = torch.randn(n, 3, 16, 16, generator=gen), torch.rand(n, model.num_patches, generator=gen)
    collate = ipu_masking.MaskingCollate(model, 0.75, half=half)
    return imgs, noise, ipu_masking.host_inputs(collate, imgs, noise, 0.75, half=half)


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_matmul_masking_gives_the_gather_path_numbers(norm_pix_loss):
    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch4", norm_pix_loss=norm_pix_loss)
    imgs, noise, (x, target, keep, restore, mask) = _inputs(model)
    loss, pred, ref_mask = model(imgs, mask_ratio=0.75, noise=noise)
    mine = ipu_masking.matmul_forward(model, x, keep, restore)
    assert torch.equal(mask, ref_mask)
    assert torch.allclose(mine, pred, atol=1e-5)
    assert float(ipu_masking.fp32_loss(mine, target, mask)) == pytest.approx(float(loss), rel=1e-5)


def test_host_matrices_keep_the_smallest_noise_and_restore_the_order():
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3]])
    keep, restore, mask = ipu_masking.host_masks(noise, 0.5)
    assert keep.shape == (1, 4, 2) and restore.shape == (1, 4, 4)
    assert keep[0].argmax(0).tolist() == [1, 3]          # patches 1 and 3 kept, smallest noise first
    assert mask.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    x = torch.arange(4.0).view(1, 4, 1)
    shuffled = torch.tensor([[[1.0], [3.0], [2.0], [0.0]]])  # kept then removed, in noise order
    assert torch.equal(restore.transpose(1, 2) @ shuffled, x)


class _Calls(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.names = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.add(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def test_the_ipu_step_has_no_gather_or_argsort(poptorch_standin):
    """The reference keeps gathers and sorts off the IPU; the step masks with matmuls only."""
    torch.manual_seed(0)
    model = create_model("mae_vit_tiny_patch4", norm_pix_loss=True)
    _, _, inputs = _inputs(model)
    with _Calls() as calls:
        loss = ipu.IPUTrainingStep(model)(*inputs)
    assert loss.dtype == torch.float32
    assert not calls.names & {"argsort", "sort", "gather", "index_select", "take_along_dim"}, calls.names
    assert "matmul" in calls.names or "__matmul__" in calls.names


def test_collate_builds_half_inputs_and_an_fp32_target():
    model = create_model("mae_vit_tiny_patch4", norm_pix_loss=True)
    samples = [(torch.randint(0, 255, (3, 16, 16), dtype=torch.uint8), 0) for _ in range(4)]
    imgs, target, keep, restore, mask = ipu_masking.MaskingCollate(model, 0.75, half=True)(samples)
    assert imgs.dtype == keep.dtype == restore.dtype == torch.float16
    assert target.dtype == mask.dtype == torch.float32 and target.shape == (4, 16, 48)
    assert keep.shape == (4, 16, 4) and restore.shape == (4, 16, 16) and mask.sum() == 4 * 12

