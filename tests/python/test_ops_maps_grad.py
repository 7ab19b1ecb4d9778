"""Gradients with respect to the sensitivity maps: the compiled backward formulas of
sense_forward / sense_adjoint / sense_normal / dc_gradient_step / dc_cg (gleam::sense_maps_grad
and gleam::sense_normal_maps_grad) against gradcheck in complex128 and against autograd through
the pure-PyTorch reference, in complex64 and complex128, for every shape case (2D/3D/cine,
M = 1/2, broadcast maps); and the reference CG's implicit backward."""

import pytest
import torch

from gleam_core import ops
from gleam_core.ops import reference
from ops_cases import CASES, make, rel, tol


def _small(case, dtype, seed):
    """A case cut down so gradcheck's finite differences stay cheap."""
    x, maps, y, mask = make(case, dtype, seed=seed)
    coils = min(maps.shape[1], 3)
    return x, maps[:, :coils].contiguous(), y[:, :coils].contiguous(), mask


def _fft_dims(case):
    return list(range(-case.fft_ndim, 0))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_raw_ops_match_reference(case, dtype):
    x, maps, y, mask = make(case, dtype, seed=40)
    g = torch.randn_like(x)
    dims = _fft_dims(case)
    got = torch.ops.gleam.sense_maps_grad(x, y, maps, mask, dims, 0)
    assert got.shape == maps.shape
    assert rel(got, reference.sense_maps_grad(x, y, maps, mask, dims)) < tol(dtype)
    got = torch.ops.gleam.sense_normal_maps_grad(x, g, maps, mask, dims, 0)
    assert rel(got, reference.sense_normal_maps_grad(x, g, maps, mask, dims)) < tol(dtype)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_maps_gradients_match_autograd_through_reference(case, dtype):
    """The wrappers' maps gradients (compiled) equal autograd through the reference composition."""
    x, maps, y, mask = make(case, dtype, seed=41)
    dims = _fft_dims(case)
    full_mask = mask.expand(x.shape[0], 1, *x.shape[2:])
    step = torch.tensor(0.4, dtype=mask.dtype)
    ahy = torch.randn_like(x)
    calls = {
        "forward": (lambda m: ops.sense_forward(x, m, mask, fft_ndim=case.fft_ndim),
                    lambda m: reference.sense_forward(x, m, full_mask, dims)),
        "adjoint": (lambda m: ops.sense_adjoint(y, m, mask, fft_ndim=case.fft_ndim),
                    lambda m: reference.sense_adjoint(y, m, full_mask, dims)),
        "normal": (lambda m: ops.sense_normal(x, m, mask, fft_ndim=case.fft_ndim),
                   lambda m: reference.sense_normal(x, m, full_mask, dims)),
        "dc_step": (lambda m: ops.dc_gradient_step(x, None, m, mask, step, fft_ndim=case.fft_ndim, ahy=ahy),
                    lambda m: reference.dc_gradient_step(x, ahy, m, full_mask, step, dims)),
    }
    for name, (compiled, ref) in calls.items():
        out_a = compiled(maps.clone().requires_grad_())
        w = torch.randn_like(out_a)
        ma, mb = maps.clone().requires_grad_(), maps.clone().requires_grad_()
        (compiled(ma).conj() * w).real.sum().backward()
        (ref(mb).conj() * w).real.sum().backward()
        assert ma.grad.shape == maps.shape, name
        assert rel(ma.grad, mb.grad) < 10 * tol(dtype), name


@pytest.mark.parametrize("case", [CASES[1], CASES[3], CASES[5]], ids=lambda c: c.name)
def test_gradcheck_complex128(case):
    """gradcheck (complex128) of every op in x and maps together, on the compiled CPU kernels."""
    x, maps, y, mask = _small(case, torch.complex128, seed=42)
    nd = case.fft_ndim
    step = torch.tensor(0.3, dtype=torch.float64)
    lam = torch.tensor(0.7, dtype=torch.float64)
    x, maps, y = x.requires_grad_(), maps.requires_grad_(), y.requires_grad_()
    torch.autograd.gradcheck(lambda x, m: ops.sense_forward(x, m, mask, fft_ndim=nd), (x, maps))
    torch.autograd.gradcheck(lambda y, m: ops.sense_adjoint(y, m, mask, fft_ndim=nd), (y, maps))
    torch.autograd.gradcheck(lambda x, m: ops.sense_normal(x, m, mask, fft_ndim=nd), (x, maps))
    ahy = torch.randn_like(x).detach()
    torch.autograd.gradcheck(lambda x, m: ops.dc_gradient_step(x, None, m, mask, step, fft_ndim=nd, ahy=ahy),
                             (x, maps))
    # CG converged to tolerance: the implicit gradient is the exact solution's (fast mode: a
    # random projection of the Jacobian, since every evaluation is a whole CG solve).
    torch.autograd.gradcheck(lambda b, m: ops.dc_cg(b, m, mask, lam, iters=200, tol=1e-14, fft_ndim=nd).x,
                             (x, maps), atol=1e-6, fast_mode=True)


def test_backward_saves_no_coil_stack():
    """Only the inputs themselves are saved for the maps gradient (coil images are rebuilt)."""
    x, maps, _, mask = make(CASES[3], torch.complex64, seed=43)
    maps.requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        ops.sense_normal(x, maps, mask, fft_ndim=3)
    assert all(t.numel() <= maps.numel() for t in saved)
    assert sum(t.numel() for t in saved if t.is_complex()) <= maps.numel() + x.numel()


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_compiled_and_reference_cg_agree_in_all_gradients(dtype):
    """dc_cg through the compiled op and through the reference path (taken when the mask needs a
    gradient) give the same gradients for b, lam and maps; the mask gets one too."""
    x, maps, _, mask = make(CASES[1], dtype, seed=44)
    lam = torch.tensor(0.3, dtype=mask.dtype)
    w = torch.randn_like(x)
    grads = []
    for mask_grad in (False, True):
        b, m, lm = x.clone().requires_grad_(), maps.clone().requires_grad_(), lam.clone().requires_grad_()
        k = mask.clone().requires_grad_(mask_grad)
        out = ops.dc_cg(b, m, k, lm, iters=60, tol=0.0).x
        (out.conj() * w).real.sum().backward()
        grads.append((b.grad, m.grad, lm.grad, k.grad))
    for a, b_ in zip(grads[0][:3], grads[1][:3]):
        assert rel(a, b_) < (1e-4 if dtype == torch.complex64 else 1e-9)
    assert grads[1][3] is not None and torch.isfinite(grads[1][3]).all()


def test_reference_cg_backward_memory_is_flat_in_iterations():
    """The reference path's CG keeps the same saved tensors for 5 and 50 iterations."""
    x, maps, _, mask = make(CASES[0], torch.complex64, seed=45)
    sizes = []
    for iters in (5, 50):
        saved = []
        k = mask.clone().requires_grad_()  # forces the reference path
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            ops.dc_cg(x.clone().requires_grad_(), maps, k, 0.5, iters=iters)
        sizes.append(sum(saved))
    assert sizes[0] == sizes[1]


def test_mask_gradient_through_reference_matches_unrolled_autograd():
    """Implicit mask gradient of the reference CG against autograd through converged iterations."""
    x, maps, _, mask = make(CASES[1], torch.complex128, seed=46)
    lam = torch.tensor(0.5, dtype=torch.float64)
    ka, kb = mask.clone().requires_grad_(), mask.clone().requires_grad_()
    w = torch.randn_like(x)
    (ops.dc_cg(x, maps, ka, lam, iters=300, tol=1e-14).x.conj() * w).real.sum().backward()
    xb = reference.cg_solve(x, maps, kb, lam, None, [-2, -1], 300, 1e-14)[0]
    (xb.conj() * w).real.sum().backward()
    assert rel(ka.grad, kb.grad) < 1e-8


@pytest.mark.cuda
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cuda_maps_grads_match_cpu(case):
    x, maps, y, mask = make(case, torch.complex64, seed=47)
    g = torch.randn_like(x)
    dims = _fft_dims(case)
    for name, args in (("sense_maps_grad", (x, y)), ("sense_normal_maps_grad", (x, g))):
        op = getattr(torch.ops.gleam, name)
        cpu = op(*args, maps, mask, dims, 0)
        for chunk in (0, 2):
            gpu = op(*(a.cuda() for a in args), maps.cuda(), mask.cuda(), dims, chunk).cpu()
            assert rel(gpu, cpu) < 1e-5, (name, chunk)
