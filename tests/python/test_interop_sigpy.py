"""The sigpy adapter against sigpy's own Sense: operators, adjointness, and sigpy's apps on both."""

from __future__ import annotations

import numpy as np
import pytest
import sigpy as sp
import sigpy.mri

from gleam_core.interop.sigpy import L1WaveletRecon, Sense

DTYPES = [np.complex64, np.complex128]
SHAPES = [(4, 12, 10), (5, 9, 7), (3, 4, 6, 5)]  # (C, *S): even 2D, odd 2D, 3D


def tol(dtype) -> float:
    return 1e-5 if dtype == np.complex64 else 1e-11


def crandn(rng, shape, dtype):
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def problem(shape, dtype, seed=0):
    """maps (C, *S), image (*S), k-space (C, *S), a binary mask and positive weights over (*S)."""
    rng = np.random.default_rng(seed)
    real = np.float32 if dtype == np.complex64 else np.float64
    maps = crandn(rng, shape, dtype)
    x = crandn(rng, shape[1:], dtype)
    y = crandn(rng, shape, dtype)
    mask = (rng.random(shape[1:]) < 0.5).astype(real)
    mask.flat[0] = 1
    weights = rng.random(shape[1:]).astype(real) + 0.1
    return maps, x, y, mask, weights


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("how", ["mask", "weights"])
def test_forward_adjoint_normal_match_sigpy_sense(shape, dtype, how):
    maps, x, y, mask, weights = problem(shape, dtype)
    if how == "mask":  # ours applies the mask; sigpy applies sqrt(weights): the same for 0/1
        ours, theirs = Sense(maps, mask), sigpy.mri.linop.Sense(maps, weights=mask)
    else:
        ours, theirs = Sense(maps, weights=weights), sigpy.mri.linop.Sense(maps, weights=weights)
    assert ours.ishape == theirs.ishape and ours.oshape == theirs.oshape
    for got, want in [(ours(x), theirs(x)), (ours.H(y), theirs.H(y)), (ours.N(x), theirs.N(x))]:
        assert type(got) is np.ndarray and got.dtype == dtype and got.shape == want.shape
        assert np.linalg.norm(want) > 0
        assert rel(got, want) < tol(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_adjointness(shape, dtype):
    maps, x, y, mask, weights = problem(shape, dtype, seed=1)
    A = Sense(maps, weights=weights)
    lhs, rhs = np.vdot(A(x), y), np.vdot(x, A.H(y))
    assert abs(lhs - rhs) <= tol(dtype) * abs(lhs)
    n = A.N(x)  # A^H A is Hermitian positive semi-definite
    assert abs(np.vdot(x, n).imag) <= tol(dtype) * abs(np.vdot(x, n))
    assert np.vdot(x, n).real > 0


def test_normal_is_the_fused_op_and_algebra_works():
    maps, x, y, mask, _ = problem(SHAPES[0], np.complex128)
    A = Sense(maps, mask)
    assert A.N.repr_str == "gleam Sense.N" and A.N.H is A.N
    assert A.H.H is A
    composed = A.H * A  # sigpy's own composition of our forward and adjoint
    assert rel(A.N(x), composed(x)) < 1e-12
    shifted = A.N + 0.5 * sp.linop.Identity(A.ishape)
    assert rel(shifted(x), A.N(x) + 0.5 * x) < 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("solver", ["ConjugateGradient", "GradientMethod"])
def test_linear_least_squares_agrees_with_sigpy(dtype, solver):
    maps, x, y, mask, _ = problem((6, 24, 20), dtype, seed=2)
    y = y * mask
    results = []
    for A in (Sense(maps, mask), sigpy.mri.linop.Sense(maps, weights=mask)):
        np.random.seed(3)  # GradientMethod's step comes from power iterations from a random start
        app = sp.app.LinearLeastSquares(A, y, lamda=0.01, max_iter=30, solver=solver, show_pbar=False)
        results.append(app.run())
    ours, theirs = results
    assert ours.dtype == dtype and np.linalg.norm(theirs) > 0
    assert rel(ours, theirs) < 1e-4


@pytest.mark.parametrize("dtype", DTYPES)
def test_l1_wavelet_recon_agrees_with_sigpy(dtype):
    maps, x, y, mask, _ = problem((6, 24, 20), dtype, seed=4)
    y = y * mask
    np.random.seed(5)
    ours = L1WaveletRecon(y, maps, 1e-3, max_iter=25, show_pbar=False).run()  # mask estimated from y, as sigpy
    np.random.seed(5)
    theirs = sigpy.mri.app.L1WaveletRecon(y, maps, 1e-3, max_iter=25, show_pbar=False).run()
    assert ours.dtype == dtype and np.linalg.norm(theirs) > 0
    assert rel(ours, theirs) < 1e-4


def test_cine_fft_over_the_last_two_axes():
    maps, x, y, mask, _ = problem((3, 4, 6, 5), np.complex128, seed=6)
    ours = Sense(maps, mask, fft_ndim=2)
    S = sp.linop.Multiply(x.shape, maps)
    theirs = sp.linop.Multiply(maps.shape, mask) * sp.linop.FFT(maps.shape, axes=(-2, -1)) * S
    assert rel(ours(x), theirs(x)) < 1e-11
    assert rel(ours.N(x), theirs.N(x)) < 1e-11


def test_bad_arguments_are_named():
    maps, x, y, mask, weights = problem(SHAPES[0], np.complex64)
    with pytest.raises(ValueError, match=r"maps must be a \(C, H, W\) or \(C, D, H, W\) array"):
        Sense(maps[0], mask)
    with pytest.raises(ValueError, match="either mask .* or weights"):
        Sense(maps, mask, weights=weights)
    with pytest.raises(ValueError, match="weights must be >= 0"):
        Sense(maps, weights=-weights)
    with pytest.raises(ValueError, match="weights must be real"):
        Sense(maps, weights=weights.astype(np.complex64))
    with pytest.raises(ValueError, match="maps must be complex64 or complex128"):
        Sense(maps.real.copy(), mask)
    A = Sense(maps, mask)
    with pytest.raises(RuntimeError) as err:  # sigpy wraps what _apply raises
        A(x.astype(np.complex128))
    assert isinstance(err.value.__cause__, ValueError)
    assert "x has dtype torch.complex128 but maps has torch.complex64" in str(err.value.__cause__)


@pytest.mark.cuda
def test_cupy_linear_least_squares_agrees_with_sigpy():
    cp = pytest.importorskip("cupy")  # optional extra: pip install ".[cupy]"
    for dtype in DTYPES:
        maps, x, y, mask, _ = problem((6, 24, 20), dtype, seed=7)
        maps, y, mask = cp.asarray(maps), cp.asarray(y * mask), cp.asarray(mask)
        ours_op = Sense(maps, mask)
        assert isinstance(ours_op.N(cp.asarray(x)), cp.ndarray)
        results = [sp.app.LinearLeastSquares(A, y, lamda=0.01, max_iter=30, show_pbar=False).run()
                   for A in (ours_op, sigpy.mri.linop.Sense(maps, weights=mask))]
        assert isinstance(results[0], cp.ndarray)
        assert rel(cp.asnumpy(results[0]), cp.asnumpy(results[1])) < 1e-4
