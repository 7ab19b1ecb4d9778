"""Inverting residual maps ``y = x + h(x)`` by fixed-point iteration (MEL-style).

Used by the invertible strategy to rebuild each unroll's input from its output: the residual
denoiser (h = f) and the gradient-step data consistency (h(x) = -t (A^H A x - A^H y)) are both
of this form. The iteration ``x <- y - h(x)`` converges linearly, at the rate of h's Lipschitz
constant, when that is below 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class InverseOptions:
    """``iters``: maximum fixed-point iterations; ``tol``: stop once the relative update
    ``||x_k+1 - x_k|| / ||y||`` is below it. The tolerance is only checked for CPU tensors (on a
    GPU the check would synchronize the host every iteration), so GPUs always run ``iters``."""

    iters: int = 30
    tol: float = 1e-7

    def __post_init__(self) -> None:
        if not isinstance(self.iters, int) or self.iters < 1:
            raise ValueError(f"inverse iters must be a positive int, got {self.iters!r}")
        if not isinstance(self.tol, (int, float)) or self.tol < 0:
            raise ValueError(f"inverse tol must be a non-negative float, got {self.tol!r}")


@torch.no_grad()
def invert_residual(h: Callable[[Tensor], Tensor], y: Tensor, options: InverseOptions) -> Tensor:
    """The x with ``x + h(x) = y``, starting from x = y. Shapes as y; no autograd graph."""
    x = y
    check = options.tol > 0 and y.device.type == "cpu"
    scale = torch.linalg.vector_norm(y) if check else None
    for _ in range(options.iters):
        x_new = y - h(x)
        if check and torch.linalg.vector_norm(x_new - x) <= options.tol * scale:
            return x_new
        x = x_new
    return x
