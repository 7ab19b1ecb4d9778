"""The Lipschitz parametrization: its power-iteration estimate against the operator norm of the
same convolution computed two other ways (the FFT of the kernel; a dense matrix), its relation to
the zero-padded convolutions networks run, and the cap it enforces."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gleam_core.models.lipschitz import LipschitzBound, bound_conv, circular_adjoint, circular_conv


def dense_norm(apply, cin: int, shape: tuple[int, ...]) -> float:
    """||A||_2 of a linear map on (1, cin, *shape) images: the largest singular value of the
    matrix whose columns are A applied to the standard basis."""
    n = cin * int(torch.tensor(shape).prod())
    basis = torch.eye(n, dtype=torch.float64).reshape(n, cin, *shape)
    with torch.no_grad():
        cols = torch.cat([apply(b[None]).reshape(1, -1) for b in basis])
    return float(torch.linalg.matrix_norm(cols.T, ord=2))


def fft_norm(weight: torch.Tensor, shape: tuple[int, ...]) -> float:
    """||A||_2 of the circular convolution with ``weight`` (out, in, k...) on ``shape``: the largest
    singular value over frequencies of the transfer matrices (FFT of the zero-padded kernel)."""
    dims = tuple(range(2, weight.dim()))
    hat = torch.fft.fftn(weight.double(), s=shape, dim=dims)     # (out, in, *shape)
    mats = hat.permute(*range(2, weight.dim()), 0, 1).reshape(-1, weight.shape[0], weight.shape[1])
    return float(torch.linalg.matrix_norm(mats.detach(), ord=2).max())


@pytest.mark.parametrize("dims,probe", [(2, 6), (3, 4)])
def test_power_iteration_matches_fft_and_dense_norms(dims, probe):
    torch.manual_seed(0)
    w = torch.randn(4, 3, *(3,) * dims, dtype=torch.float64)
    param = LipschitzBound(1e9, probe=probe, init_iters=1000)   # bound never active: sigma of A itself
    sigma = float(param.sigma(w))
    assert sigma == pytest.approx(fft_norm(w, (probe,) * dims), rel=1e-4)
    assert sigma == pytest.approx(dense_norm(lambda x: circular_conv(w, x), 3, (probe,) * dims), rel=1e-4)
    # circular_adjoint is the adjoint: <A x, y> = <x, A^T y>
    x, y = torch.randn(1, 3, *(probe,) * dims, dtype=torch.float64), torch.randn(1, 4, *(probe,) * dims,
                                                                                  dtype=torch.float64)
    assert float((circular_conv(w, x) * y).sum()) == pytest.approx(float((x * circular_adjoint(w, y)).sum()))


@pytest.mark.parametrize("dims", [2, 3])
def test_estimate_bounds_zero_padded_convolutions_tightly(dims):
    """The zero-padded convolution on small images has a norm below the estimate (16-point probe),
    and the estimate is within 2% of the supremum over all frequencies (a 64-point grid)."""
    torch.manual_seed(1)
    w = torch.randn(3, 2, *(3,) * dims, dtype=torch.float64)
    sigma = float(LipschitzBound(1e9, init_iters=400).sigma(w))
    conv = F.conv2d if dims == 2 else F.conv3d
    shape = (7, 6) if dims == 2 else (4, 5, 3)
    assert dense_norm(lambda x: conv(x, w, padding=1), 2, shape) <= sigma * (1 + 1e-9)
    fine = fft_norm(w, (64,) * dims)
    assert sigma <= fine * (1 + 1e-6) and sigma >= 0.98 * fine


def test_bound_caps_the_convolution():
    """Weights blown up: the effective kernel's norm (FFT on the probe grid) equals the bound,
    so the zero-padded convolution's dense norm is below it; weights under the bound are unchanged."""
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    bound_conv(conv, 0.7)
    p = conv.parametrizations.weight
    with torch.no_grad():
        p.original.mul_(20.0)
        for _ in range(100):                                # one power step per weight version
            p.original.mul_(1.0)
            conv.weight
    assert fft_norm(conv.weight, (16, 16)) == pytest.approx(0.7, rel=1e-4)
    assert dense_norm(lambda x: F.conv2d(x, conv.weight, padding=1), 2, (6, 5)) <= 0.7 * (1 + 1e-4)
    with torch.no_grad():
        p.original.mul_(1e-3)
    torch.testing.assert_close(conv.weight, p.original)


def test_sigma_gradient_and_state_dict_round_trip():
    """sigma is differentiable in the weight (gradcheck) and the vector is saved with the model."""
    torch.manual_seed(3)
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64)
    param = LipschitzBound(1.0, probe=5, init_iters=300)
    param.sigma(w)                                          # converge v; gradcheck then keeps it
    assert torch.autograd.gradcheck(lambda weight: torch.linalg.vector_norm(circular_conv(weight, param.v)),
                                    (w.clone().requires_grad_(),))
    conv = nn.Conv2d(2, 2, 3, padding=1).double()
    bound_conv(conv, 0.5)
    conv.weight
    fresh = nn.Conv2d(2, 2, 3, padding=1).double()
    bound_conv(fresh, 0.5)
    fresh.load_state_dict(conv.state_dict())
    torch.testing.assert_close(fresh.parametrizations.weight[0].v, conv.parametrizations.weight[0].v)
    # A loaded model takes one power step at its first weight access (as after an optimizer step).
    torch.testing.assert_close(fresh.weight, conv.weight, rtol=1e-3, atol=0)
