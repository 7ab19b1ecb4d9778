"""Data-consistency layers of unrolled networks, each with its inverse.

Both take and return complex images (B, M, *S) and read the operator and ``A^H y`` from the
batch's :class:`~gleam_core.models.problem.Problem`. Learnable scalars are real parameters of
shape () and the dtype of the model (float32 for complex64 data, float64 for complex128).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .inverse import InverseOptions, solve_hpd
from .problem import Problem


def _scalar(module: nn.Module, name: str, value: float, learnable: bool) -> None:
    t = torch.tensor(float(value))
    if learnable:
        module.register_parameter(name, nn.Parameter(t))
    else:
        module.register_buffer(name, t)


class GradientStepDC(nn.Module):
    """``x -> x - t (A^H A x - A^H y)`` (fused ``SenseOp.gradient_step``) with step t learnable or fixed.

    Invertible when ``0 < t * ||A^H A|| < 1``: then ``I - t A^H A`` is Hermitian positive
    definite and the inverse solves ``(I - t A^H A) x = y - t A^H y`` by conjugate gradients.
    """

    def __init__(self, step: float, learnable: bool = True) -> None:
        super().__init__()
        _scalar(self, "step", step, learnable)

    def forward(self, x: Tensor, problem: Problem) -> Tensor:
        return problem.op.gradient_step(x, self.step, ahy=problem.ahy)

    def inverse(self, y: Tensor, problem: Problem, options: InverseOptions) -> Tensor:
        op, t = problem.op, self.step
        return solve_hpd(lambda x: x - t * op.normal(x), y - t * problem.ahy, y, options)

    def inverse_gain(self) -> float:
        """Bound on how much :meth:`inverse` amplifies an error in its input: ``1 / (1 - t)``
        for ``||A^H A|| <= 1`` (normalized maps, mask <= 1); infinite when ``t >= 1``."""
        t = float(self.step.detach())
        return 1.0 / (1.0 - t) if 0 < t < 1 else math.inf


class CGDC(nn.Module):
    """MoDL's data consistency ``z -> (A^H A + lam I)^-1 (A^H y + lam z)`` by ``iters`` CG iterations
    warm-started at z; lam = exp(log_lam) > 0, learnable or fixed.

    Memory does not grow with ``iters`` (the CG op's backward is one more CG solve). The inverse
    is closed-form: ``z = x + (A^H A x - A^H y) / lam``, exact when the forward solve converged
    and computed exactly, but it multiplies errors by up to :meth:`inverse_gain` per unroll.
    """

    def __init__(self, lam: float, learnable: bool = False, iters: int = 10, tol: float = 0.0) -> None:
        super().__init__()
        if lam <= 0:
            raise ValueError(f"lam must be > 0, got {lam!r}")
        _scalar(self, "log_lam", math.log(lam), learnable)
        self.iters, self.tol = iters, tol

    @property
    def lam(self) -> Tensor:
        return self.log_lam.exp()

    def forward(self, z: Tensor, problem: Problem) -> Tensor:
        lam = self.lam
        return problem.op.cg(problem.ahy + lam * z, lam, x0=z, iters=self.iters, tol=self.tol).x

    @torch.no_grad()
    def inverse(self, x: Tensor, problem: Problem, options: InverseOptions) -> Tensor:
        return x + (problem.op.normal(x) - problem.ahy) / self.lam

    def inverse_gain(self) -> float:
        """Bound on how much :meth:`inverse` amplifies an error in its input (an unconverged
        forward solve, rounding): ``1 + ||A^H A|| / lam`` with ``||A^H A|| <= 1``; 21 for lam = 0.05."""
        return 1.0 + 1.0 / float(self.lam.detach())
