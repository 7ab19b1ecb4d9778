"""SENSE forward/adjoint/normal against the pure-PyTorch reference, adjointness,
readout decoupling and mask handling, on CPU (and CUDA when present)."""

import pytest
import torch

from gleam_core import ops
from gleam_core.ops import reference
from ops_cases import CASES, make, rel, tol

DTYPES = [torch.complex64, torch.complex128]


def full_dims(case):
    return list(range(-case.fft_ndim, 0))


def canonical(mask, case):
    return mask.reshape((1,) * (2 + len(case.spatial) - mask.dim()) + tuple(mask.shape))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_ops_match_reference(case, dtype, devices):
    for device in devices:
        x, maps, y, mask = make(case, dtype, device)
        m = canonical(mask, case)
        dims = full_dims(case)
        op = ops.SenseOp(maps, mask, fft_ndim=case.fft_ndim)
        assert rel(op.forward(x), reference.sense_forward(x, maps, m, dims)) < tol(dtype)
        assert rel(op.adjoint(y), reference.sense_adjoint(y, maps, m, dims)) < tol(dtype)
        assert rel(op.normal(x), reference.sense_normal(x, maps, m, dims)) < tol(dtype)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_adjointness(case, devices):
    for device in devices:
        x, maps, y, mask = make(case, torch.complex64, device, seed=1)
        op = ops.SenseOp(maps, mask, fft_ndim=case.fft_ndim)
        ax, ahy = op.forward(x), op.adjoint(y)
        lhs = torch.vdot(y.flatten().cdouble(), ax.flatten().cdouble())
        rhs = torch.vdot(ahy.flatten().cdouble(), x.flatten().cdouble())
        assert float((lhs - rhs).abs() / (ax.norm() * y.norm())) < 1e-6
        assert float(ahy.abs().max()) > 0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_readout_decoupled_equals_full(case, devices):
    for device in devices:
        x, maps, _, mask = make(case, torch.complex128, device, seed=2)
        dec = ops.SenseOp(maps, mask, fft_ndim=case.fft_ndim)
        full = ops.SenseOp(maps, mask, fft_ndim=case.fft_ndim, decouple=False)
        assert full.normal_dims == full_dims(case)
        assert rel(dec.normal(x), full.normal(x)) < 1e-12


def test_decoupling_is_detected_from_mask_values():
    # A full-size (H, W) mask that only varies along W is the 1D case: only W is transformed.
    x, maps, _, _ = make(CASES[0], torch.complex128)
    line = (torch.rand(6) < 0.5).double()
    line[0] = 1
    mask = line.expand(8, 6).clone()
    op = ops.SenseOp(maps, mask)
    assert op.normal_dims == [-1] and op.mask.shape == (1, 1, 1, 6)
    ref = reference.sense_normal(x, maps, mask.reshape(1, 1, 8, 6), [-2, -1])
    assert rel(op.normal(x), ref) < 1e-12


def test_mask_forms_agree():
    x, maps, y, mask = make(CASES[0], torch.complex64, seed=3)
    w = mask.reshape(-1)
    for m in (w, w.bool(), w.reshape(1, 6), w.expand(8, 6).clone(), w.reshape(1, 1, 1, 6).double()):
        assert rel(ops.sense_forward(x, maps, m), ops.sense_forward(x, maps, w)) < 1e-6
        assert rel(ops.sense_normal(x, maps, m), ops.sense_normal(x, maps, w)) < 1e-6


def test_weighted_mask_enters_normal_squared():
    x, maps, _, _ = make(CASES[1], torch.complex128, seed=4)
    weights = torch.rand(1, 1, 7, 5, dtype=torch.float64) + 0.1
    ref = reference.sense_adjoint(reference.sense_forward(x, maps, weights, [-2, -1]), maps, weights, [-2, -1])
    assert rel(ops.sense_normal(x, maps, weights), ref) < 1e-12


def test_fully_sampled_normal_is_coil_energy():
    x, maps, _, _ = make(CASES[0], torch.complex128, seed=5)
    out = ops.sense_normal(x, maps, torch.ones(1))
    assert ops.SenseOp(maps, torch.ones(1)).normal_dims == []
    assert rel(out, (maps.abs() ** 2).sum(1) * x) < 1e-12


def test_noncontiguous_inputs_are_accepted():
    x, maps, y, mask = make(CASES[1], torch.complex64, seed=6)
    xt = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    mt = maps.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert not xt.is_contiguous() and not mt.is_contiguous()
    assert rel(ops.sense_normal(xt, mt, mask), ops.sense_normal(x, maps, mask)) < 1e-6


def test_backend_reports_compiled_cpu():
    import os
    if os.environ.get("GLEAM_NO_EXT"):
        pytest.skip("GLEAM_NO_EXT set: the reference backend is requested")
    assert ops.backend()["cpu"] == "compiled"
