"""Inverses of the unroll layers, for the invertible strategy (MEL-style).

* Residual maps ``y = x + h(x)`` (the residual denoiser, h = f) by the fixed-point iteration
  ``x <- y - h(x)``, which converges linearly at the rate of h's Lipschitz constant when that is
  below 1 (:func:`invert_residual`).
* Hermitian positive-definite linear maps (the gradient-step DC: ``(I - t A^H A) x = y - t A^H y``)
  by batched conjugate gradients (:func:`solve_hpd`), which converge far faster than the
  fixed-point iteration when ``t ||A^H A||`` approaches 1.

Both work per batch element and honour the tolerance on every device: an element stops (its
iterate is frozen) once its relative update (fixed point) or residual (CG) is within ``tol``, so
the result is the same on a CPU and a GPU. Only for CPU tensors does the loop also end early when
every element has stopped (on a GPU, asking would synchronize the host every iteration). A
safeguard keeps, per batch element, the iterate with the smallest update or residual, so a
diverging inverse returns its best finite iterate instead of overflowing; the invertible strategy
reports the resulting inversion error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class InverseOptions:
    """``iters``: maximum iterations of each inverse; ``tol``: a batch element stops once its
    relative update (fixed point) or residual (CG) is within it (on every device; only CPU runs
    also skip the remaining iterations when all elements have stopped)."""

    iters: int = 30     # the spec default (invertible.iters); MEL's authors used about 5
    tol: float = 1e-6   # the spec default (invertible.tol)

    def __post_init__(self) -> None:
        if not isinstance(self.iters, int) or self.iters < 1:
            raise ValueError(f"inverse iters must be a positive int, got {self.iters!r}")
        if not isinstance(self.tol, (int, float)) or self.tol < 0:
            raise ValueError(f"inverse tol must be a non-negative float, got {self.tol!r}")


def _norms(t: Tensor) -> Tensor:
    """Per batch element 2-norms: (B, ...) -> (B,) real."""
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


def _keep_best(best: Tensor, best_score: Tensor, cand: Tensor, score: Tensor,
               done: Tensor) -> tuple[Tensor, Tensor]:
    """Per batch element not ``done``, the candidate where its (finite) score is smaller."""
    better = (score < best_score) & ~done  # False for NaN scores
    shape = (-1,) + (1,) * (cand.dim() - 1)
    return torch.where(better.reshape(shape), cand, best), torch.where(better, score, best_score)


@torch.no_grad()
def invert_residual(h: Callable[[Tensor], Tensor], y: Tensor, options: InverseOptions) -> Tensor:
    """The x with ``x + h(x) = y`` (B, ...), by ``x <- y - h(x)`` from x = y; no autograd graph."""
    scale = _norms(y).clamp_min(torch.finfo(y.real.dtype).tiny)
    check = options.tol > 0 and y.device.type == "cpu"
    x, best, best_step = y, y, torch.full_like(scale, float("inf"))
    done = torch.zeros_like(scale, dtype=torch.bool)
    for _ in range(options.iters):
        x_new = y - h(x)
        step = _norms(x_new - x) / scale
        best, best_step = _keep_best(best, best_step, x_new, step, done)
        done = best_step <= options.tol
        if check and bool(done.all()):
            break
        x = x_new
    return best


@torch.no_grad()
def solve_hpd(apply: Callable[[Tensor], Tensor], b: Tensor, x0: Tensor, options: InverseOptions) -> Tensor:
    """Solves ``apply(x) = b`` (B, ...) for a Hermitian positive-definite ``apply`` by batched
    conjugate gradients from ``x0``; elements whose curvature ``<p, A p>`` is not positive stop."""
    real = b.real.dtype
    scale = _norms(b).clamp_min(torch.finfo(real).tiny)
    shape = (-1,) + (1,) * (b.dim() - 1)

    def dot(u: Tensor, v: Tensor) -> Tensor:
        return (u.conj() * v).real.flatten(1).sum(1)

    x = x0
    r = b - apply(x)
    p = r
    rs = dot(r, r)
    best, best_res = x, rs.sqrt() / scale
    active = torch.ones_like(rs, dtype=torch.bool)
    check = options.tol > 0 and b.device.type == "cpu"
    for _ in range(options.iters):
        done = best_res <= options.tol
        if check and bool(done.all()):
            break
        ap = apply(p)
        pap = dot(p, ap)
        active = active & (pap > 0) & ~done
        alpha = torch.where(active, rs / torch.where(active, pap, torch.ones_like(pap)), torch.zeros_like(rs))
        x = x + alpha.to(real).reshape(shape) * p
        r = r - alpha.to(real).reshape(shape) * ap
        rs_new = dot(r, r)
        best, best_res = _keep_best(best, best_res, x, rs_new.sqrt() / scale, done)
        beta = torch.where(active & (rs > 0), rs_new / torch.where(rs > 0, rs, torch.ones_like(rs)),
                           torch.zeros_like(rs))
        p = r + beta.to(real).reshape(shape) * p
        rs = rs_new
    return best
