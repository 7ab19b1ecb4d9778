"""``invertible``: memory-free backpropagation through invertible unrolls (MEL-style).

The forward pass runs without a graph and keeps only the network's output (plus, every
``anchor_every`` unrolls, that unroll's input: an anchor). The backward pass walks the unrolls
from last to first: it rebuilds the unroll's input from its output with the unroll's inverse
(CG DC in closed form, the residual denoiser by fixed-point iterations, the gradient-step DC
by CG on I - t A^H A), recomputes that one unroll with grad, and backpropagates through it.
Where an anchor (or, for the first unroll, the network input A^H y) is known, the rebuilt
input is replaced by it, so inversion errors compound over at most ``anchor_every`` unrolls.

Why anchors: an inverse multiplies the error of its input by up to ``Unroll.inverse_gain()``
(MoDL's CG DC: 1 + 1/lam, 21 for lam = 0.05). Without anchors a float32 rounding error of 1e-6
grows to ~1e3 over 8 MoDL unrolls and the gradients are meaningless; PGD's gain is 1/(1-t), 2
for t = 0.5, so it needs an anchor only every 7 unrolls. ``"auto"`` picks the largest spacing S whose bound ``eps * gain^(S-1)``
stays below 1e-2 (eps: 1e-4 in float32, where an unconverged CG solve dominates rounding;
1e-12 in float64) from the initial step/lam: S = 2 for lam = 0.05.

Memory is one unroll's activations plus the anchors. Reported per step with ``diagnostics``
on (the default): ``inversion_error`` = the largest ||x_rebuilt - x|| / ||x|| at the anchors and
the network input (the error that reaches the gradients), and ``unroll_mismatch`` = max over
unrolls of ||f(f^-1(y)) - y|| / ||y||. Measuring the first needs inverses whose results are then
replaced by the known inputs; with ``diagnostics`` off (timing, as MEL's authors ran it) those
inverses are skipped and nothing is reported.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

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
    """What the backward pass needs besides the saved output and anchors (not counted as saved
    memory: the problem is the batch's data and the modules are the model)."""

    model: UnrolledNet
    problem: Problem
    options: InverseOptions
    params: list[torch.nn.Parameter]
    anchor_every: int
    start: Tensor  # the network's input state (model.start)
    # Per unroll: has a usable inverse (finite inverse_gain at construction). VarNet's cascades do
    # not: they are always anchored and never inverted, not even for the diagnostics.
    invertible: list[bool]
    diagnostics: bool = True
    errors: dict[str, Tensor] = field(default_factory=dict)


class _InvertibleChain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x0: Tensor, run: _Run, *params: Tensor) -> Tensor:
        anchors = []
        with torch.no_grad():
            x = x0
            for k, unroll in enumerate(run.model.unrolls):
                if k and k % run.anchor_every == 0:
                    anchors.append(x)
                x = unroll(x, run.problem)
        ctx.run = run
        ctx.save_for_backward(x, *anchors)
        return x

    @staticmethod
    def backward(ctx, grad: Tensor):
        y, *anchors = ctx.saved_tensors
        run: _Run = ctx.run
        index = {id(p): i for i, p in enumerate(run.params)}
        grads: list[Tensor | None] = [None] * len(run.params)
        zero = torch.zeros((), dtype=y.real.dtype, device=y.device)
        mismatch, worst = zero, zero
        for k in reversed(range(len(run.model.unrolls))):
            unroll = run.model.unrolls[k]
            if k % run.anchor_every == 0:
                x_in = run.start if k == 0 else anchors[k // run.anchor_every - 1]
                if run.diagnostics and run.invertible[k]:
                    worst = torch.maximum(worst, _rel(unroll.inverse(y, run.problem, run.options), x_in))
            else:
                x_in = unroll.inverse(y, run.problem, run.options)
            with torch.enable_grad():
                x_req = x_in.detach().requires_grad_()
                out = unroll(x_req, run.problem)
                own = [p for p in unroll.parameters() if p.requires_grad]
                g = torch.autograd.grad(out, [x_req, *own], grad, allow_unused=True)
            if run.diagnostics:
                mismatch = torch.maximum(mismatch, _rel(out.detach(), y))
            grad = g[0]
            for p, gp in zip(own, g[1:]):
                if gp is not None:
                    i = index[id(p)]
                    grads[i] = gp if grads[i] is None else grads[i] + gp
            y = x_in
        if run.diagnostics:
            run.errors = {"inversion_error": worst, "unroll_mismatch": mismatch}
        return (grad if ctx.needs_input_grad[0] else None), None, *grads


def anchor_spacing(model: UnrolledNet, anchor_every: int | Literal["auto"] = "auto") -> int:
    """Unrolls between stored anchors (see the module docstring); U (the depth) means none."""
    depth = len(model.unrolls)
    if anchor_every != "auto":
        return max(1, min(int(anchor_every), depth))
    gain = max(u.inverse_gain() for u in model.unrolls)
    if gain <= 1:
        return depth
    if math.isinf(gain):
        return 1
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    eps = 1e-12 if dtype == torch.float64 else 1e-4
    return max(1, min(depth, 1 + math.floor(math.log(1e-2 / eps) / math.log(gain))))


class Invertible(WholeNetworkStrategy):
    """``options``: fixed-point iterations and tolerance of the inverses; ``anchor_every``: an
    int S (keep every S-th unroll's input) or ``"auto"`` (:func:`anchor_spacing`);
    ``diagnostics``: measure and report the inversion error each step (see the module docstring;
    an attribute, so a benchmark may turn it off for timed steps only)."""

    name = "invertible"
    warn_above = 0.1  # inversion error beyond which the gradients are not to be trusted

    def __init__(self, model: UnrolledNet, loss_fn: LossFn, optim: OptimizerConfig, total: int, device,
                 options: InverseOptions = InverseOptions(), anchor_every: int | Literal["auto"] = "auto",
                 diagnostics: bool = True) -> None:
        super().__init__(model, loss_fn, optim, total, device)
        self.options, self.diagnostics = options, diagnostics
        self.invertible = [math.isfinite(u.inverse_gain()) for u in model.unrolls]
        self.anchor_every = anchor_spacing(model, anchor_every)
        self._last: _Run | None = None
        self._warned = False
        bound = model.config.denoiser.lipschitz
        if model.config.type == "varnet":
            if self.anchor_every != 1:  # the rebuilt inputs would be wrong, and unmeasured
                raise ValueError(f"invertible.anchor_every: got {anchor_every!r}, but varnet cascades have no "
                                 "usable inverse, so every cascade must be an anchor (1, or auto)")
            warnings.warn("invertible: varnet cascades have no reliable inverse (the NormUnet rescales its "
                          "output by its input's statistics; see gleam_core/models/varnet.py): every cascade's "
                          "input is stored, so memory is checkpoint-like and the gradients exact", stacklevel=2)
        elif bound is None or bound >= 1:
            warnings.warn(f"invertible: model.denoiser.lipschitz is {bound}; x + f(x) is only guaranteed "
                          "invertible by fixed-point iteration for a bound below 1 (e.g. 0.9), otherwise the "
                          "rebuilt inputs, and so the gradients, can be wrong (see inversion_error)", stacklevel=2)

    def forward_train(self, problem: Problem) -> Tensor:
        params = [p for p in self.model.parameters() if p.requires_grad]
        x0 = self.model.start(problem)
        self._last = _Run(self.model, problem, self.options, params, self.anchor_every, x0, self.invertible,
                          self.diagnostics)
        return self.model.readout(_InvertibleChain.apply(x0, self._last, *params), problem)

    def extra(self) -> dict[str, Tensor]:
        run, self._last = self._last, None
        return {} if run is None else run.errors

    def review(self, stats: Sequence[dict]) -> None:
        # Read at the logging interval with the losses: no host sync of its own.
        err = next((s["inversion_error"] for s in stats if not s.get("inversion_error", 0.0) <= self.warn_above),
                   None)
        if not self._warned and err is not None:
            self._warned = True
            warnings.warn(f"invertible: inversion error {err:.3g} > {self.warn_above:g}: the rebuilt inputs, "
                          f"and so the gradients, are unreliable (anchors every {self.anchor_every} of "
                          f"{len(self.model.unrolls)} unrolls). Lower invertible.anchor_every, bound the denoiser "
                          "(model.denoiser.lipschitz < 1), or use strategy checkpoint", stacklevel=2)
