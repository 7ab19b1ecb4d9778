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


def _sum_to_maps(full: Tensor, maps: Tensor) -> Tensor:
    """Sums an unbroadcast maps gradient (B, C, M, *S) over the axes where ``maps`` broadcasts."""
    return full.sum_to_size(maps.shape) if full.shape != maps.shape else full


def sense_maps_grad(x: Tensor, y: Tensor, maps: Tensor, mask: Tensor, fft_dims: Sequence[int],
                    coil_chunk: int = 0) -> Tensor:
    """Maps gradient of A x against k-space y (or of A^H y against image x):
    ``conj(x[:, m]) * F^H(mask * y[:, c])``, shaped like ``maps``."""
    return _sum_to_maps(x.conj().unsqueeze(1) * _ifft(y * mask, fft_dims).unsqueeze(2), maps)


def sense_normal_maps_grad(x: Tensor, g: Tensor, maps: Tensor, mask: Tensor, fft_dims: Sequence[int],
                           coil_chunk: int = 0) -> Tensor:
    """Maps gradient of A^H A x against output gradient g: the adjoint's term at A x plus the
    forward's term at A g (the mask enters squared), shaped like ``maps``."""
    return (sense_maps_grad(g, sense_forward(x, maps, mask, fft_dims), maps, mask, fft_dims)
            + sense_maps_grad(x, sense_forward(g, maps, mask, fft_dims), maps, mask, fft_dims))


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


class _ImplicitCG(torch.autograd.Function):
    """:func:`cg_solve` with the compiled op's implicit backward (memory flat in ``iters``):
    grad_b = (N + lam)^-1 g by one more CG solve, grad_lam = -Re <x, grad_b>, and the maps and
    mask gradients from ``d x = -(N + lam)^-1 (dN) x``, i.e. the vector-Jacobian product of
    ``N(maps, mask) x`` (x fixed) against ``-grad_b``: one normal op's graph, not one per iteration."""

    @staticmethod
    def forward(ctx, b, maps, mask, lam, x0, fft_dims, iters, tol):
        x, resid, done = cg_solve(b, maps, mask, lam, x0, fft_dims, iters, tol)
        ctx.mark_non_differentiable(resid, done)
        ctx.save_for_backward(maps, mask, lam, x)
        ctx.fft_dims, ctx.iters, ctx.tol = fft_dims, iters, tol
        return x, resid, done

    @staticmethod
    def backward(ctx, gx, gresid, gdone):
        maps, mask, lam, x = ctx.saved_tensors
        gb = cg_solve(gx, maps.detach(), mask.detach(), lam.detach(), None, ctx.fft_dims, ctx.iters, ctx.tol)[0]
        glam = None
        if ctx.needs_input_grad[3]:
            per_batch = -(x.conj() * gb).real.flatten(1).sum(1)
            glam = (per_batch.sum() if lam.dim() == 0 else per_batch).to(lam.dtype)
        gmaps = gmask = None
        needs = ctx.needs_input_grad[1:3]
        if any(needs):
            with torch.enable_grad():
                leaves = [t.detach().requires_grad_(need) for t, need in zip((maps, mask), needs)]
                n = sense_normal(x.detach(), leaves[0], leaves[1], ctx.fft_dims)
                grads = iter(torch.autograd.grad(n, [t for t in leaves if t.requires_grad], -gb))
            gmaps, gmask = (next(grads) if need else None for need in needs)
        return (gb if ctx.needs_input_grad[0] else None), gmaps, gmask, glam, None, None, None, None


def cg_solve_implicit(b: Tensor, maps: Tensor, mask: Tensor, lam: Tensor, x0: Tensor | None, fft_dims: Sequence[int],
                      iters: int, tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`cg_solve`, differentiable in b, lam, maps and mask by implicit differentiation
    (the gradient of the exact solution; ``x0`` gets none)."""
    return _ImplicitCG.apply(b, maps, mask, lam, None if x0 is None else x0.detach(), list(fft_dims), iters, tol)
