"""Data-consistency ops: the fused gradient step and batched CG, their gradients
(gradcheck in complex128, CG implicit backward vs finite differences and vs unrolled
autograd), per-element convergence and memory that does not grow with CG iterations."""

import pytest
import torch

from gleam_core import ops
from gleam_core.ops import reference
from ops_cases import CASES, make, rel, tol


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gradient_step_matches_reference(case, dtype, devices):
    for device in devices:
        x, maps, y, mask = make(case, dtype, device, seed=10)
        real = x.real.dtype
        step = torch.rand(case.batch, dtype=real, device=device) + 0.2
        op = ops.SenseOp(maps, mask, fft_ndim=case.fft_ndim)
        m = op.mask
        ahy = reference.sense_adjoint(y, maps, m, list(range(-case.fft_ndim, 0)))
        ref = reference.dc_gradient_step(x, ahy, maps, m, step, list(range(-case.fft_ndim, 0)))
        assert rel(op.gradient_step(x, step, y=y), ref) < tol(dtype)
        assert rel(ops.dc_gradient_step(x, None, maps, mask, step, fft_ndim=case.fft_ndim, ahy=ahy), ref) < tol(dtype)
        scalar = op.gradient_step(x, 0.7, ahy=ahy)
        assert rel(scalar, reference.dc_gradient_step(x, ahy, maps, m, torch.tensor(0.7, dtype=real, device=device),
                                                      list(range(-case.fft_ndim, 0)))) < tol(dtype)


@pytest.mark.parametrize("case", [CASES[0], CASES[3], CASES[5]], ids=lambda c: c.name)
def test_cg_matches_reference_and_solves(case, devices):
    for device in devices:
        x, maps, _, mask = make(case, torch.complex128, device, seed=11)
        lam = torch.linspace(0.3, 1.0, case.batch, dtype=torch.float64, device=device)
        op = ops.SenseOp(maps, mask, fft_ndim=case.fft_ndim)
        got = op.cg(x, lam, iters=15)
        ref = reference.cg_solve(x, maps, op.mask, lam, None, list(range(-case.fft_ndim, 0)), 15, 0.0)
        assert rel(got.x, ref[0]) < 1e-9
        assert torch.allclose(got.residual, ref[1], rtol=1e-6, atol=1e-12)
        assert torch.equal(got.iterations.cpu(), ref[2].cpu())
        solved = op.cg(x, lam, iters=300, tol=1e-10)
        lhs = op.normal(solved.x) + lam.reshape(-1, *[1] * (x.dim() - 1)) * solved.x
        assert rel(lhs, x) < 1e-8
        assert bool((solved.residual <= 1e-10).all())


def test_cg_batch_elements_converge_on_their_own():
    x, maps, _, mask = make(CASES[2], torch.complex128, seed=12)
    lam = torch.tensor([100.0, 1.0, 0.01], dtype=torch.float64)  # well- to ill-conditioned
    res = ops.dc_cg(x, maps, mask, lam, iters=200, tol=1e-8)
    it = res.iterations.tolist()
    assert it[0] < it[1] < it[2] <= 200, it
    assert bool((res.residual <= 1e-8).all())


def test_cg_warm_start():
    x, maps, _, mask = make(CASES[0], torch.complex128, seed=13)
    op = ops.SenseOp(maps, mask)
    exact = op.cg(x, 0.5, iters=200, tol=1e-12).x
    warm = op.cg(x, 0.5, x0=exact, iters=3)
    assert rel(warm.x, exact) < 1e-9
    assert float(warm.residual.max()) < 1e-10


def test_cg_zero_right_hand_side_returns_zero_whatever_the_warm_start(devices):
    for device in devices:
        x, maps, _, mask = make(CASES[0], torch.complex128, device, seed=15)
        b = x.clone()
        b[1] = 0
        x0 = torch.randn_like(x)
        op = ops.SenseOp(maps, mask)
        got = op.cg(b, 0.5, x0=x0, iters=8)
        assert bool((got.x[1] == 0).all())
        assert float(got.residual[1]) == 0.0 and int(got.iterations[1]) == 0
        alone = ops.SenseOp(maps[:1], mask).cg(b[:1], 0.5, x0=x0[:1], iters=8)  # the other element is unaffected
        assert rel(got.x[:1], alone.x) < 1e-12
        ref = reference.cg_solve(b, maps, op.mask, torch.tensor(0.5, dtype=torch.float64, device=device), x0,
                                 [-2, -1], 8, 0.0)
        assert rel(got.x, ref[0]) < 1e-9
        assert torch.equal(got.iterations.cpu(), ref[2].cpu())


def test_scalar_parameters_accept_numpy_numbers():
    np = pytest.importorskip("numpy")
    x, maps, y, mask = make(CASES[0], torch.complex64, seed=16)
    want = ops.dc_gradient_step(x, y, maps, mask, 0.5)
    assert rel(ops.dc_gradient_step(x, y, maps, mask, np.float32(0.5)), want) < 1e-7
    assert rel(ops.dc_cg(x, maps, mask, np.float64(0.5), iters=3, tol=np.float32(0)).x,
               ops.dc_cg(x, maps, mask, 0.5, iters=3).x) < 1e-7


def _tiny(dtype=torch.complex128):
    x, maps, y, mask = make(CASES[1], dtype, seed=14)
    return x[:, :, :4, :3].contiguous(), maps[:, :3, :, :4, :3].contiguous(), y[:, :3, :4, :3].contiguous(), \
        mask[..., :4, :3].contiguous()


def test_gradcheck_linear_ops():
    x, maps, y, mask = _tiny()
    op = ops.SenseOp(maps, mask)
    x.requires_grad_()
    y.requires_grad_()
    assert torch.autograd.gradcheck(op.forward, (x,))
    assert torch.autograd.gradcheck(op.adjoint, (y,))
    assert torch.autograd.gradcheck(op.normal, (x,))


def test_gradcheck_gradient_step():
    x, maps, y, mask = _tiny()
    op = ops.SenseOp(maps, mask)
    ahy = op.adjoint(y).detach().requires_grad_()
    step = torch.tensor([0.4], dtype=torch.float64, requires_grad=True)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b, s: op.gradient_step(a, s, ahy=b), (x, ahy, step))
    scalar = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, s: op.gradient_step(a, s, ahy=ahy.detach()), (x, scalar))


def test_cg_gradients_finite_differences_and_unrolled_autograd():
    x, maps, _, mask = _tiny()
    op = ops.SenseOp(maps, mask)
    b = x.clone().requires_grad_()
    lam = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    # Converged solves, so the implicit gradient is the exact derivative of the solution map.
    assert torch.autograd.gradcheck(lambda bb, ll: op.cg(bb, ll, iters=60, tol=1e-14).x, (b, lam), atol=1e-6)

    weight = torch.randn_like(x)
    loss = (op.cg(b, lam, iters=60, tol=1e-14).x * weight.conj()).real.sum()
    gb, gl = torch.autograd.grad(loss, (b, lam))
    b2 = x.clone().requires_grad_()
    lam2 = lam.detach().clone().requires_grad_()
    unrolled = reference.cg_solve(b2, maps, op.mask, lam2, None, op.normal_dims, 60, 0.0)[0]
    gb2, gl2 = torch.autograd.grad((unrolled * weight.conj()).real.sum(), (b2, lam2))
    assert rel(gb, gb2) < 1e-8
    assert rel(gl, gl2) < 1e-8


def _saved_bytes(fn):
    seen, total = set(), [0]

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return total[0], out


def test_cg_memory_independent_of_iterations():
    x, maps, _, mask = make(CASES[0], torch.complex64, seed=15)
    op = ops.SenseOp(maps, mask)
    b = x.clone().requires_grad_()
    few, _ = _saved_bytes(lambda: op.cg(b, 0.5, iters=3).x)
    many, out = _saved_bytes(lambda: op.cg(b, 0.5, iters=40).x)
    assert few == many > 0
    out.abs().sum().backward()
    assert b.grad is not None and float(b.grad.abs().max()) > 0
