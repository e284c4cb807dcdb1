"""The native remap ops against the plain PyTorch path (remap/reference.py): values, gradients
(gradcheck in float64, double backward), random shapes with hypothesis (K=0, K=L, non-contiguous,
bf16/fp16, pos absent/shared/per-sample/2-D, repeated indices), torch.compile, and the MAE model's loss
and gradients with and without the op. The build itself is tested in test_remap_build.py."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import remap
from remap import reference

ROOT = Path(__file__).resolve().parents[1]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
# mask-token / pos gradients are sums, taken in another order than the plain path's: tolerances per dtype
TOL = {torch.float32: (1e-5, 1e-6), torch.float64: (1e-12, 1e-12), torch.bfloat16: (2e-2, 2e-2),
       torch.float16: (2e-3, 2e-3)}


@pytest.fixture(scope="module", autouse=True)
def native():
    """Build remap/remap_ops.so if needed (incremental `make`: nothing to do when up to date) and load it."""
    proc = subprocess.run(["make", "-C", str(ROOT / "remap"), f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert remap.load(), remap.status()
    remap.set_mode("require")
    yield
    remap.set_mode(None)


def ids_for(n: int, length: int, k: int, repeated: bool, gen: torch.Generator):
    """(ids_keep [n, k], ids_restore [n, length]) as MAE makes them, or arbitrary indices with repeats."""
    if repeated:
        return (torch.randint(0, length, (n, k), generator=gen),
                torch.randint(0, length, (n, length), generator=gen))
    shuffle = torch.rand(n, length, generator=gen).argsort(1)
    return shuffle[:, :k], shuffle.argsort(1)


def data(shape, dtype, noncontig: bool, gen: torch.Generator) -> torch.Tensor:
    """A tensor of `shape`; non-contiguous (strided rows and a transposed last dim) when asked."""
    if not noncontig:
        return torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    n, r, d = shape
    big = torch.randn(n, d, 2 * r, generator=gen, dtype=torch.float64).to(dtype)
    t = big[:, :, ::2].transpose(1, 2)
    assert t.shape == shape and (t.is_contiguous() is False or min(r, d) == 1)
    return t


def grads(fn, inputs):
    """Output and gradients of sum(out * w) for a fixed random weight w."""
    leaves = [t.detach().requires_grad_(t.is_floating_point()) if t is not None else None for t in inputs]
    out = fn(*leaves)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=torch.float64).to(out.dtype)
    (out * w).sum().backward()
    return out.detach(), [t.grad if t is not None and t.is_floating_point() else None for t in leaves]


def assert_same(native_result, plain_result, dtype, exact_value=True):
    (out_a, grads_a), (out_b, grads_b) = native_result, plain_result
    assert out_a.dtype == out_b.dtype and out_a.shape == out_b.shape
    if exact_value:
        assert torch.equal(out_a, out_b)
    else:
        torch.testing.assert_close(out_a, out_b, rtol=TOL[dtype][0], atol=TOL[dtype][1])
    rtol, atol = TOL[dtype]
    for ga, gb in zip(grads_a, grads_b):
        assert (ga is None) == (gb is None)
        if ga is not None:
            assert ga.shape == gb.shape and ga.dtype == gb.dtype
            torch.testing.assert_close(ga, gb, rtol=rtol, atol=atol)


def run_both(fn_name, inputs):
    remap.set_mode("require")
    native_result = grads(getattr(remap, fn_name), inputs)
    plain_result = grads(getattr(reference, fn_name), inputs)
    return native_result, plain_result


shapes = st.tuples(st.integers(1, 3), st.integers(1, 10), st.integers(1, 9)).flatmap(
    lambda nld: st.tuples(st.just(nld), st.integers(0, nld[1])))  # ((N, L, D), K) with 0 <= K <= L


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, dtype=st.sampled_from(DTYPES), noncontig=st.booleans(), repeated=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_keep_matches_plain_path(shape, dtype, noncontig, repeated, seed):
    (n, length, d), k = shape
    gen = torch.Generator().manual_seed(seed)
    ids_keep, _ = ids_for(n, length, k, repeated, gen)
    x = data((n, length, d), dtype, noncontig, gen)
    assert_same(*run_both("keep", [x, ids_keep]), dtype)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, dtype=st.sampled_from(DTYPES), noncontig=st.booleans(), repeated=st.booleans(),
       pos_kind=st.sampled_from([None, "shared", "per_sample", "2d", "strided"]),
       mask_shape=st.sampled_from(["d", "11d"]), seed=st.integers(0, 2**31 - 1))
def test_restore_matches_plain_path(shape, dtype, noncontig, repeated, pos_kind, mask_shape, seed):
    (n, length, d), k = shape
    gen = torch.Generator().manual_seed(seed)
    _, ids_restore = ids_for(n, length, k, repeated, gen)
    x = data((n, 1 + k, d), dtype, noncontig, gen)
    mask = data((1, 1, d), dtype, False, gen)
    mask = mask.reshape(d) if mask_shape == "d" else mask
    pos = {None: lambda: None,
           "shared": lambda: data((1, 1 + length, d), dtype, False, gen),
           "per_sample": lambda: data((n, 1 + length, d), dtype, False, gen),
           "2d": lambda: data((1, 1 + length, d), dtype, False, gen)[0],
           "strided": lambda: data((n, 1 + length, d), dtype, True, gen)}[pos_kind]()
    # with repeated indices the x gradient sums several rows: order differs in low precision
    assert_same(*run_both("restore", [x, ids_restore, mask, pos]), dtype)


@pytest.mark.parametrize("x_dtype,pos_dtype", [(torch.bfloat16, torch.float32), (torch.float32, torch.float64)])
def test_restore_promotes_like_plain_path(x_dtype, pos_dtype):
    gen = torch.Generator().manual_seed(1)
    _, ids_restore = ids_for(2, 6, 2, False, gen)
    x, mask = data((2, 3, 4), x_dtype, False, gen), data((4,), torch.float32, False, gen)
    pos = data((1, 7, 4), pos_dtype, False, gen)
    # values are bit-equal; the mask-token gradient is summed before (native) or after (plain) its rounding
    # to x's dtype, so it is compared at x's precision
    assert_same(*run_both("restore", [x, ids_restore, mask, pos]), x_dtype)


@pytest.mark.parametrize("k", [0, 3, 6])
@pytest.mark.parametrize("pos_kind", [None, "shared", "per_sample", "2d"])
def test_gradcheck_float64(k, pos_kind):
    gen = torch.Generator().manual_seed(k)
    n, length, d = 2, 6, 3
    ids_keep, ids_restore = ids_for(n, length, k, False, gen)
    x = torch.randn(n, length, d, generator=gen, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a: remap.keep(a, ids_keep), (x,))
    xv = torch.randn(n, 1 + k, d, generator=gen, dtype=torch.float64, requires_grad=True)
    mask = torch.randn(1, 1, d, generator=gen, dtype=torch.float64, requires_grad=True)
    pos_shape = {"shared": (1, 1 + length, d), "per_sample": (n, 1 + length, d), "2d": (1 + length, d)}
    inputs = [xv, mask]
    if pos_kind:
        inputs.append(torch.randn(pos_shape[pos_kind], generator=gen, dtype=torch.float64, requires_grad=True))
    torch.autograd.gradcheck(lambda *a: remap.restore(a[0], ids_restore, *a[1:]), tuple(inputs))
    if k == 3 and pos_kind == "shared":  # double backward (the backward ops have their adjoints registered)
        torch.autograd.gradgradcheck(lambda a: remap.keep(a, ids_keep), (x,))
        torch.autograd.gradgradcheck(lambda *a: remap.restore(a[0], ids_restore, *a[1:]), tuple(inputs))


def test_opcheck_schemas_fake_and_autograd_registration():
    gen = torch.Generator().manual_seed(3)
    ids_keep, ids_restore = ids_for(2, 5, 2, False, gen)
    x = torch.randn(2, 5, 4, generator=gen, requires_grad=True)
    xv = torch.randn(2, 3, 4, generator=gen, requires_grad=True)
    mask, pos = torch.randn(4, generator=gen), torch.randn(1, 6, 4, generator=gen, requires_grad=True)
    tests = ("test_schema", "test_autograd_registration", "test_faketensor")
    torch.library.opcheck(torch.ops.remap.keep.default, (x, ids_keep), test_utils=tests)
    torch.library.opcheck(torch.ops.remap.restore.default, (xv, ids_restore, mask, pos), test_utils=tests)
    torch.library.opcheck(torch.ops.remap.keep_backward.default, (x.detach(), ids_restore, 7), test_utils=tests)
    torch.library.opcheck(torch.ops.remap.restore_backward.default, (torch.randn(2, 6, 4), ids_restore, 3),
                          test_utils=tests)


def test_torch_compile_fullgraph():
    """One small case through dynamo + AOTAutograd (fake tensors, registered autograd) in one graph."""
    gen = torch.Generator().manual_seed(4)
    n, length, k, d = 2, 6, 2, 4
    ids_keep, ids_restore = ids_for(n, length, k, False, gen)
    x = torch.randn(n, length, d, generator=gen, requires_grad=True)
    cls = torch.randn(n, 1, d, generator=gen, requires_grad=True)
    mask = torch.randn(d, generator=gen, requires_grad=True)
    pos = torch.randn(1, 1 + length, d, generator=gen, requires_grad=True)

    def step(x, cls, mask, pos):
        kept = remap.keep(x, ids_keep)
        return (remap.restore(torch.cat([cls, kept * 2], 1), ids_restore, mask, pos) ** 2).sum()

    torch._dynamo.reset()
    leaves = (x, cls, mask, pos)
    loss_c = torch.compile(step, fullgraph=True, backend="aot_eager")(*leaves)
    g_c = torch.autograd.grad(loss_c, leaves)
    remap.set_mode("off")
    try:
        loss_p = step(*leaves)
    finally:
        remap.set_mode("require")
    g_p = torch.autograd.grad(loss_p, leaves)
    torch.testing.assert_close(loss_c, loss_p)
    for a, b in zip(g_c, g_p):
        torch.testing.assert_close(a, b)


def test_bad_indices_raise():
    x = torch.randn(1, 4, 2)
    with pytest.raises(RuntimeError, match="outside"):
        remap.keep(x, torch.tensor([[0, 4]]))
    with pytest.raises(RuntimeError, match="outside"):
        remap.restore(torch.randn(1, 2, 2), torch.tensor([[0, 1, 2, -1]]), torch.zeros(2))
    with pytest.raises(RuntimeError, match="ids_restore must be"):
        remap.restore(torch.randn(2, 2, 2), torch.tensor([[0, 1, 2, 3]]), torch.zeros(2))


def test_model_loss_and_gradients_same_with_and_without_op():
    models_mae = pytest.importorskip("mae.models_mae")
    torch.manual_seed(0)
    model = models_mae.create_model("mae_vit_tiny_patch4", norm_pix_loss=True)
    imgs = torch.randn(3, 3, 16, 16)
    noise = torch.rand(3, 16)
    results = {}
    for mode in ("off", "require"):
        remap.set_mode(mode)
        model.zero_grad()
        loss, pred, mask = model(imgs, mask_ratio=0.75, noise=noise)
        loss.backward()
        results[mode] = (loss.detach(), pred.detach(),
                         {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None})
    remap.set_mode("require")
    (loss_off, pred_off, g_off), (loss_on, pred_on, g_on) = results["off"], results["require"]
    assert torch.equal(loss_off, loss_on) and torch.equal(pred_off, pred_on)
    assert g_off.keys() == g_on.keys() and "mask_token" in g_on
    for name in g_off:
        torch.testing.assert_close(g_on[name], g_off[name], rtol=1e-5, atol=1e-7, msg=name)
    assert g_on["mask_token"].abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_plain_path():
    if not remap._kernels.get("cuda"):
        pytest.skip("remap_ops.so was built without CUDA kernels (no nvcc)")
    gen = torch.Generator().manual_seed(5)
    for dtype in DTYPES:
        for k in (0, 3, 7):
            ids_keep, ids_restore = ids_for(3, 7, k, False, gen)
            x = data((3, 7, 5), dtype, True, gen).cuda()
            assert_same(*run_both("keep", [x, ids_keep.cuda()]), dtype)
            xv, mask = data((3, 1 + k, 5), dtype, False, gen).cuda(), data((5,), dtype, False, gen).cuda()
            pos = data((1, 8, 5), dtype, False, gen).cuda()
            assert_same(*run_both("restore", [xv, ids_restore.cuda(), mask, pos]), dtype)
