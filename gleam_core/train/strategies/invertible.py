"""``invertible``: memory-free backpropagation through invertible unrolls (MEL-style).

The forward pass runs without a graph and keeps only the network's output. The backward pass
walks the unrolls from last to first: it rebuilds the unroll's input from its output with the
unroll's inverse (CG DC in closed form, the residual denoiser by fixed-point iterations, the
gradient-step DC by CG on I - t A^H A), recomputes that one unroll with grad, and
backpropagates through it. Memory is one unroll's activations, whatever the depth. Gradients equal e2e's up to the inversion error,
which is reported: ``inversion_error`` = ||x0_rebuilt - x0|| / ||x0|| for the network input x0
(= A^H y), and ``unroll_mismatch`` = max over unrolls of ||f(f^-1(y)) - y|| / ||y||.
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ...models import InverseOptions, Problem, UnrolledNet
from ..losses import LossFn
from ..optim import OptimizerConfig
from .base import WholeNetworkStrategy


def _rel(a: Tensor, b: Tensor) -> Tensor:
    return torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(torch.finfo(b.real.dtype).tiny)


@dataclass
class _Run:
    """What the backward pass needs besides the saved output (not counted as saved memory: the
    problem is the batch's data and the modules are the model)."""

    model: UnrolledNet
    problem: Problem
    options: InverseOptions
    params: list[torch.nn.Parameter]
    errors: dict[str, Tensor] = field(default_factory=dict)


class _InvertibleChain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x0: Tensor, run: _Run, *params: Tensor) -> Tensor:
        with torch.no_grad():
            x = x0
            for unroll in run.model.unrolls:
                x = unroll(x, run.problem)
        ctx.run = run
        ctx.save_for_backward(x)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor):
        (y,) = ctx.saved_tensors
        run: _Run = ctx.run
        index = {id(p): i for i, p in enumerate(run.params)}
        grads: list[Tensor | None] = [None] * len(run.params)
        mismatch = torch.zeros((), dtype=y.real.dtype, device=y.device)
        for unroll in reversed(run.model.unrolls):
            x_in = unroll.inverse(y, run.problem, run.options)
            with torch.enable_grad():
                x_req = x_in.detach().requires_grad_()
                out = unroll(x_req, run.problem)
                own = [p for p in unroll.parameters() if p.requires_grad]
                g = torch.autograd.grad(out, [x_req, *own], grad, allow_unused=True)
            mismatch = torch.maximum(mismatch, _rel(out.detach(), y))
            grad = g[0]
            for p, gp in zip(own, g[1:]):
                if gp is not None:
                    i = index[id(p)]
                    grads[i] = gp if grads[i] is None else grads[i] + gp
            y = x_in
        run.errors = {"inversion_error": _rel(y, run.problem.ahy), "unroll_mismatch": mismatch}
        return (grad if ctx.needs_input_grad[0] else None), None, *grads


class Invertible(WholeNetworkStrategy):
    """``options``: fixed-point iterations and tolerance of the inverses."""

    name = "invertible"

    def __init__(self, model: UnrolledNet, loss_fn: LossFn, optim: OptimizerConfig, total: int, device,
                 options: InverseOptions = InverseOptions()) -> None:
        super().__init__(model, loss_fn, optim, total, device)
        self.options = options
        self._last: _Run | None = None
        bound = model.config.denoiser.lipschitz
        if bound is None or bound >= 1:
            warnings.warn(f"invertible: model.denoiser.lipschitz is {bound}; x + f(x) is only guaranteed "
                          "invertible by fixed-point iteration for a bound below 1 (e.g. 0.9), otherwise the "
                          "rebuilt inputs, and so the gradients, can be wrong (see inversion_error)", stacklevel=2)

    def forward_train(self, problem: Problem) -> Tensor:
        params = [p for p in self.model.parameters() if p.requires_grad]
        self._last = _Run(self.model, problem, self.options, params)
        return _InvertibleChain.apply(problem.ahy, self._last, *params)

    def extra(self) -> dict[str, Tensor]:
        run, self._last = self._last, None
        return run.errors if run is not None else {}
