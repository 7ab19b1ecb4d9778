"""Bad input to the ops: every case raises a ValueError (wrappers) or RuntimeError (raw
ops) that names the argument, what it got and what was expected."""


import pytest
import torch

from gleam_core import ops
from ops_cases import CASES, make


@pytest.fixture
def problem():
    return make(CASES[0], torch.complex64, seed=30)  # x (2,1,8,6), maps (2,5,1,8,6), y (2,5,8,6), mask (1,1,1,6)


def raises(match, fn, *args, **kwargs):
    with pytest.raises(ValueError, match=match):
        fn(*args, **kwargs)


def test_real_image_rejected(problem):
    x, maps, _, mask = problem
    raises(r"x must be complex64 or complex128, got shape \(2, 1, 8, 6\), dtype torch.float32",
           ops.sense_forward, x.real.contiguous(), maps, mask)


def test_real_maps_rejected(problem):
    x, maps, _, mask = problem
    raises(r"maps must be complex64 or complex128.*torch.float32", ops.sense_normal, x, maps.real, mask)


def test_mixed_precision_rejected(problem):
    x, maps, _, mask = problem
    raises(r"x has dtype torch.complex128 but maps has torch.complex64; mixed precision",
           ops.sense_normal, x.to(torch.complex128), maps, mask)


def test_device_mismatch_rejected(problem):
    x, maps, _, mask = problem
    raises(r"x is on meta but maps is on cpu", ops.sense_normal, x.to("meta"), maps, mask)
    raises(r"mask is on meta but maps are on cpu", ops.sense_normal, x, maps, mask.to("meta"))


def test_wrong_image_shape(problem):
    x, maps, _, mask = problem
    raises(r"x has shape \(2, 8, 6\), expected \(B, M, \*S\) with map sets M=1 and 2 spatial axes",
           ops.sense_normal, x[:, 0], maps, mask)
    raises(r"x has shape \(2, 2, 8, 6\), expected \(B, M, \*S\) with map sets M=1",
           ops.sense_normal, torch.cat([x, x], 1), maps, mask)


def test_wrong_kspace_coils(problem):
    _, maps, y, mask = problem
    raises(r"y has shape \(2, 4, 8, 6\), expected \(B, C, \*S\) with coils C=5", ops.sense_adjoint, y[:, :4], maps, mask)


def test_batch_and_spatial_mismatch(problem):
    x, maps, _, mask = problem
    raises(r"x batch size 3 does not match maps batch size 2", ops.sense_normal, torch.cat([x, x[:1]]), maps, mask)
    raises(r"x spatial shape \(8, 5\) does not match maps spatial shape \(8, 6\)",
           ops.sense_normal, x[..., :5], maps, mask)


def test_mask_that_does_not_broadcast(problem):
    x, maps, _, _ = problem
    raises(r"mask spatial shape \(1, 7\) does not broadcast to the maps. spatial shape \(8, 6\)",
           ops.sense_normal, x, maps, torch.ones(7))
    raises(r"mask batch size 3 does not broadcast to x batch size 2", ops.sense_normal, x, maps, torch.ones(3, 1, 8, 6))
    raises(r"size 5 on the coil axis", ops.sense_normal, x, maps, torch.ones(2, 5, 8, 6))
    raises(r"mask must be real or bool", ops.sense_normal, x, maps, torch.ones(6, dtype=torch.complex64))
    raises(r"mask has 6 dims", ops.sense_normal, x, maps, torch.ones(1, 1, 1, 1, 8, 6))


def test_bad_fft_ndim(problem):
    x, maps, _, mask = problem
    raises(r"fft_ndim must be 2 or 3, got 4", ops.sense_normal, x, maps, mask, fft_ndim=4)
    raises(r"fft_ndim=3 needs at least 3 spatial axes; maps have 2", ops.sense_normal, x, maps, mask, fft_ndim=3)


def test_bad_step_and_lam(problem):
    x, maps, y, mask = problem
    raises(r"step has shape \(3,\), expected \(\) or \(2,\)", ops.dc_gradient_step, x, y, maps, mask, torch.ones(3))
    raises(r"step must be real", ops.dc_gradient_step, x, y, maps, mask, torch.ones(2, dtype=torch.complex64))
    raises(r"lam must be finite and >= 0 .* got -1.0", ops.dc_cg, x, maps, mask, -1.0)
    nan_lam = torch.tensor([0.5, float("nan")])
    raises(r"lam must be finite and >= 0 .* got \[0.5, nan\]", ops.dc_cg, x, maps, mask, nan_lam)
    raises(r"tol must be a non-negative float, got nan", ops.dc_cg, x, maps, mask, 0.5, tol=float("nan"))
    raises(r"iters must be a non-negative int, got -2", ops.dc_cg, x, maps, mask, 0.5, iters=-2)
    raises(r"x0 batch size 1 does not match maps batch size 2", ops.dc_cg, x, maps, mask, 0.5, x0=x[:1])
    raises(r"x0 has shape \(1, 1, 8, 6\), expected \(2, 1, 8, 6\) like b", ops.dc_cg, x, maps[:1], mask, 0.5, x0=x[:1])
    raises(r"exactly one of y \(k-space\) or ahy", ops.SenseOp(maps, mask).gradient_step, x, 0.1)


def test_not_a_tensor(problem):
    x, maps, _, mask = problem
    raises(r"x must be a torch.Tensor \(or a NumPy/DLPack array\), got list", ops.sense_normal, x.tolist(), maps, mask)
    raises(r"mixed array types: x is a numpy.ndarray but maps is a torch.Tensor", ops.sense_normal, x.numpy(), maps,
           mask)
    raises(r"coil_chunk must be a positive int or None, got 0", ops.SenseOp, maps, mask, coil_chunk=0)


def test_raw_ops_check_their_arguments(problem):
    """Direct torch.ops.gleam calls (no wrapper) also fail cleanly, never crash."""
    x, maps, _, mask = problem
    m = mask.reshape(1, 1, 1, 6)
    cases = [
        (lambda: torch.ops.gleam.sense_normal(x.transpose(-1, -2), maps, m, [-1], 0), r"x of shape .* is not contiguous"),
        (lambda: torch.ops.gleam.sense_normal(x, maps, m.double(), [-1], 0), r"mask has dtype Double, expected Float"),
        (lambda: torch.ops.gleam.sense_normal(x, maps, m, [-3], 0), r"fft_dims entry -3 is out of range"),
        (lambda: torch.ops.gleam.sense_normal(x, maps[:, :, :, :, :5].contiguous(), m, [-1], 0),
         r"maps spatial shape \[8, 5\] does not match x spatial shape \[8, 6\]"),
        (lambda: torch.ops.gleam.sense_normal(x.real.contiguous(), maps, m, [-1], 0),
         r"x has dtype Float, expected complex64 or complex128"),
        (lambda: torch.ops.gleam.dc_gradient_step(x, x, maps, m, torch.ones(5), [-1], 0),
         r"step has shape \[5\], expected \(\) or \(2,\)"),
        (lambda: torch.ops.gleam.cg_solve(x, maps, m, torch.tensor(1.0), None, [-1], -1, 0.0, 0),
         r"iters is -1, expected >= 0"),
    ]
    for fn, match in cases:
        with pytest.raises(RuntimeError, match=match):
            fn()
