"""Pure-PyTorch reference implementations of the raw ``gleam::`` ops.

They are the test oracle and the fallback kernels when the compiled extension is not
available. They take the raw-op arguments (see csrc/ops/sense.cpp): x (B, M, *S) complex,
maps (B or 1, C, M, *S) with size 1 allowed on a leading non-transformed axis, mask
(B or 1, 1, *S) real with size 1 on broadcast axes, ``fft_dims`` the (negative) spatial
axes to transform. They are written the plain fastMRI way: materialized coil stacks,
explicit shifts, no readout decoupling.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .fft import fftnc, ifftnc


def _fft(t: Tensor, dims: Sequence[int]) -> Tensor:
    return fftnc(t, tuple(dims)) if len(dims) else t


def _ifft(t: Tensor, dims: Sequence[int]) -> Tensor:
    return ifftnc(t, tuple(dims)) if len(dims) else t


def sense_forward(x: Tensor, maps: Tensor, mask: Tensor, fft_dims: Sequence[int], coil_chunk: int = 0) -> Tensor:
    """y = mask * F(sum_m maps[:, :, m] * x[:, m]): (B, C, *S)."""
    coil_images = (maps * x.unsqueeze(1)).sum(2)
    return _fft(coil_images, fft_dims) * mask


def sense_adjoint(y: Tensor, maps: Tensor, mask: Tensor, fft_dims: Sequence[int], coil_chunk: int = 0) -> Tensor:
    """x[:, m] = sum_c conj(maps[:, c, m]) * F^H(mask * y[:, c]): (B, M, *S)."""
    coil_images = _ifft(y * mask, fft_dims)
    return (maps.conj() * coil_images.unsqueeze(2)).sum(1)


def sense_normal(x: Tensor, maps: Tensor, mask: Tensor, fft_dims: Sequence[int], coil_chunk: int = 0) -> Tensor:
    """A^H A x (the mask enters twice, i.e. squared)."""
    return sense_adjoint(sense_forward(x, maps, mask, fft_dims), maps, mask, fft_dims)


def _per_batch(p: Tensor, like: Tensor) -> Tensor:
    return p.reshape(-1, *([1] * (like.dim() - 1)))


def dc_gradient_step(x: Tensor, ahy: Tensor, maps: Tensor, mask: Tensor, step: Tensor, fft_dims: Sequence[int],
                     coil_chunk: int = 0) -> Tensor:
    """x - step_b * (A^H A x - ahy)."""
    return x - _per_batch(step, x) * (sense_normal(x, maps, mask, fft_dims) - ahy)


def _bdot(a: Tensor, b: Tensor) -> Tensor:
    """Per-batch Re <a, b> in float64."""
    return (a.conj() * b).real.flatten(1).double().sum(1)


def cg_solve(b: Tensor, maps: Tensor, mask: Tensor, lam: Tensor, x0: Tensor | None, fft_dims: Sequence[int],
             iters: int, tol: float, coil_chunk: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Batched CG for (A^H A + lam_b I) x = b; each batch element stops on its own.

    Returns x, the relative (recursively updated) residual ||r_b|| / ||b_b|| (real, (B,)) and the iterations
    each element ran (int64, (B,)).
    """
    lam_b = lam.reshape(-1).expand(b.shape[0]).to(b.real.dtype)

    def apply(v: Tensor) -> Tensor:
        return sense_normal(v, maps, mask, fft_dims) + _per_batch(lam_b, v) * v

    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - apply(x) if x0 is not None else b.clone()
    p = r.clone()
    rs = _bdot(r, r)
    bnorm = _bdot(b, b).sqrt()
    if x0 is not None:  # b = 0: x = 0 solves the system exactly, whatever x0 was
        x = torch.where(_per_batch(bnorm == 0, x), torch.zeros_like(x), x)
    active = (bnorm > 0) & ((rs.sqrt() > tol * bnorm) if tol > 0 else torch.ones_like(bnorm, dtype=torch.bool))
    done = torch.zeros(b.shape[0], dtype=torch.int64, device=b.device)
    for it in range(iters):
        if not bool(active.any()):
            break
        ap = apply(p)
        pap = _bdot(p, ap)
        active = active & (pap > 0)
        alpha = torch.where(active, rs / torch.where(pap > 0, pap, torch.ones_like(pap)), torch.zeros_like(rs))
        x = x + _per_batch(alpha.to(b.real.dtype), x) * p
        r = r - _per_batch(alpha.to(b.real.dtype), r) * ap
        rs_new = _bdot(r, r)
        beta = torch.where(active & (rs > 0), rs_new / torch.where(rs > 0, rs, torch.ones_like(rs)),
                           torch.zeros_like(rs))
        rs = torch.where(active, rs_new, rs)
        done = torch.where(active, torch.full_like(done, it + 1), done)
        if tol > 0:
            active = active & (rs_new.sqrt() > tol * bnorm)
        p = torch.where(_per_batch(active, p), r + _per_batch(beta.to(b.real.dtype), p) * p, p)
    resid = torch.where(bnorm > 0, rs.sqrt() / torch.where(bnorm > 0, bnorm, torch.ones_like(bnorm)),
                        torch.zeros_like(bnorm))
    return x, resid.to(b.real.dtype), done
