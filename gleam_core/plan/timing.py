"""Predicted time per training iteration of each candidate, relative to e2e.

Every strategy is a sum of unroll passes (U unrolls):

=============  ============================================================
e2e            U (forward + backward)
checkpoint     U forward without graph + U (forward + backward): recomputed
invertible     U forward without graph + U (inverse + forward + backward)
gleam          U (forward + backward): the same passes as e2e, split into M
               modules (one device; on P devices module updates overlap)
=============  ============================================================

The pass costs come from timing one unroll (forward with graph, backward, forward without
graph, inverse) on the target device, on the batch scaled down so one unroll is small
(ratios of passes hardly depend on scale), or, with ``measure=False``, from counting passes:
forward 1, backward 2, inverse ``invertible.iters`` (fixed-point iterations of a denoiser
pass; on CUDA no early stop).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch

from ..models import InverseOptions, Problem, UnrolledNet, fft_ndim_of
from ..train.spec import COMPUTE_DTYPES, Spec
from .accounting import batch_tensors
from .candidates import Candidate
from .geometry import Geometry

TIMING_ELEMENTS = 1 << 21  # coil-stack elements (B * C * voxels) of the scaled timing problem


@dataclass(frozen=True)
class PassCosts:
    """Seconds (or pass counts) of one unroll: forward with graph, backward, forward without
    graph, inverse. ``how`` says where they come from."""

    forward: float
    backward: float
    forward_nograd: float
    inverse: float
    how: str


def counted_costs(spec: Spec) -> PassCosts:
    return PassCosts(1.0, 2.0, 1.0, float(spec.invertible.iters), "counted unroll passes (no timing)")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measured_costs(spec: Spec, geometry: Geometry, device: str, repeats: int = 3) -> PassCosts:
    """Times one unroll of the spec's network on ``device`` (median of ``repeats``) on the batch
    scaled so that its coil stack has about :data:`TIMING_ELEMENTS` elements."""
    dev = torch.device(device)
    elements = geometry.batch * geometry.coils * geometry.voxels
    factor = min(1.0, (TIMING_ELEMENTS / elements) ** (1 / len(geometry.spatial)))
    g = geometry.scaled(factor) if factor < 1 else geometry
    cfg = spec.model.__class__(**{**spec.model.__dict__, "unrolls": 1})
    net = UnrolledNet.build(cfg, g.kind, g.sets)
    net.set_compute_dtype(COMPUTE_DTYPES[spec.precision])
    unroll = net.unrolls[0].to(dev)
    batch = batch_tensors(g, dev)
    problem = Problem.from_data(batch["kspace"], batch["maps"], batch["mask"], fft_ndim_of(g.kind))
    x = net.start(problem)  # VarNet: the masked k-space (its unroll 0 also runs the sensitivity net)
    options = InverseOptions(spec.invertible.iters, spec.invertible.tol)
    times: dict[str, list[float]] = {"forward": [], "backward": [], "forward_nograd": [], "inverse": []}

    def clock(name: str, fn):
        _sync(dev)
        t0 = time.perf_counter()
        out = fn()
        _sync(dev)
        times[name].append(time.perf_counter() - t0)
        return out

    for _ in range(repeats + 1):  # the first round warms up (allocations, cuFFT plans)
        xr = x.detach().requires_grad_()
        out = clock("forward", lambda: unroll(xr, problem))
        clock("backward", lambda: out.abs().sum().backward())
        with torch.no_grad():
            y = clock("forward_nograd", lambda: unroll(x, problem))
        clock("inverse", lambda: unroll.inverse(y, problem, options))
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    if math.isinf(unroll.inverse_gain()) and spec.invertible.anchor_every in ("auto", 1):
        med["inverse"] = 0.0  # no usable inverse (VarNet): every unroll's input is anchored, none inverted
    return PassCosts(med["forward"], med["backward"], med["forward_nograd"], med["inverse"],
                     f"timed one unroll on {dev.type} ({g.describe()})")


def iteration_cost(c: Candidate, unrolls: int, costs: PassCosts) -> float:
    """Cost of one training iteration of candidate ``c`` (see the module docstring)."""
    f, b, fn, inv = costs.forward, costs.backward, costs.forward_nograd, costs.inverse
    if c.strategy in ("e2e", "gleam"):
        return unrolls * (f + b)
    if c.strategy == "checkpoint":
        return unrolls * (fn + f + b)
    if c.strategy == "invertible":
        return unrolls * (fn + inv + f + b)
    raise ValueError(f"unknown strategy {c.strategy!r}")


def relative_times(candidates: list[Candidate], unrolls: int, costs: PassCosts) -> dict[Candidate, float]:
    """Each candidate's iteration time divided by e2e's."""
    base = iteration_cost(Candidate("e2e"), unrolls, costs)
    return {c: iteration_cost(c, unrolls, costs) / base for c in candidates}
