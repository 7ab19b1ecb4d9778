"""The choice under a memory budget: the fastest candidate whose training step fits.

:func:`plan` estimates every candidate (:mod:`.candidates`) with :func:`estimate_step_memory`
and :mod:`.timing`, and picks the fastest that fits (ties: the earlier in the candidate order,
so exact end-to-end gradients win at equal speed, then the fewest GLEAM modules).
:func:`max_unrolls` gives, per strategy, the largest unroll count that fits.
:func:`resolve_auto` is what ``strategy: auto`` in a training spec runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..train.spec import Spec
from .accounting import MemoryReport, estimate_step_memory
from .candidates import Candidate, candidates_of, divisors
from .geometry import Geometry, geometry_of
from ..sizes import format_size, parse_size
from .timing import PassCosts, counted_costs, measured_costs, relative_times

STRATEGY_ORDER = ("e2e", "checkpoint", "invertible", "gleam")

# A candidate fits when its estimated peak is within the budget less this headroom: what the
# estimate does not see (allocator caching and fragmentation, first-step one-off allocations,
# measured at ~13 MiB on the CPU, CUDA library workspaces) must not push a real run over it.
# With the estimate's measured accuracy (0.88-0.98 of the real step on the CPU), the chosen
# configuration then trains within the budget.
HEADROOM_FRACTION = 0.10
HEADROOM_BYTES = 16 * 2**20


def usable_bytes(budget_bytes: int) -> int:
    """The part of a budget a candidate's estimated peak may use (see HEADROOM_FRACTION)."""
    return int(budget_bytes * (1 - HEADROOM_FRACTION)) - HEADROOM_BYTES


@dataclass
class Estimate:
    candidate: Candidate
    report: MemoryReport
    relative_time: float
    fits: bool

    def as_json(self) -> dict:
        c = self.candidate
        return {"strategy": c.strategy, "modules": c.modules, "segments": c.segments,
                "peak_bytes": int(self.report.peak_bytes), "relative_time": round(float(self.relative_time), 4),
                "fits": bool(self.fits)}


@dataclass
class Plan:
    """What :func:`plan` found; :meth:`as_json` is gleam-plan's ``--json`` object."""

    budget_bytes: int
    device: str
    geometry: Geometry
    unrolls: int
    timing: str
    estimates: list[Estimate]
    choice: Estimate | None
    notes: list[str] = field(default_factory=list)
    max_unrolls: dict[str, dict] | None = None

    def with_budget(self, budget: int | str) -> "Plan":
        """The same estimates weighed against another budget (fits and choice recomputed)."""
        budget_bytes = parse_size(budget)
        usable = usable_bytes(budget_bytes)
        estimates = [dataclasses.replace(e, fits=e.report.peak_bytes <= usable) for e in self.estimates]
        fitting = [e for e in estimates if e.fits]
        choice = min(fitting, key=lambda e: e.relative_time) if fitting else None  # min keeps the first of ties
        return dataclasses.replace(self, budget_bytes=budget_bytes, estimates=estimates, choice=choice,
                                   max_unrolls=None)

    def as_json(self) -> dict:
        out = {"budget_bytes": self.budget_bytes, "choice": self.choice.as_json() if self.choice else None,
               "candidates": [e.as_json() for e in self.estimates]}
        if self.max_unrolls is not None:
            out["max_unrolls"] = self.max_unrolls
        return out

    def advice(self) -> str:
        """What would fit when nothing does."""
        smallest = min(self.estimates, key=lambda e: e.report.peak_bytes)
        g = self.geometry
        tips = [f"the smallest candidate, {smallest.candidate.label()}, needs {format_size(smallest.report.peak_bytes)} "
                f"of a {format_size(self.budget_bytes)} budget ({format_size(usable_bytes(self.budget_bytes))} "
                "after the planner's headroom)"]
        if g.batch > 1:
            tips.append(f"a smaller batch (data.batch_size={g.batch}; memory is nearly proportional to it)")
        if g.kind == "3d":
            tips.append("smaller slabs or patches of the volume, or 2D training on ky-kz slices "
                        "(data.kind: 2d with data.train.options: {mode: slices})")
        else:
            tips.append("smaller patches (crop the images) or fewer frames")
        tips.append("more devices: GLEAM modules spread over them (gleam.devices, or torchrun; each device "
                    "holds about its share of the modules)")
        tips.append("fewer unrolls or denoiser features (model.unrolls, model.denoiser.features)")
        return "nothing fits: " + tips[0] + ". Try " + "; ".join(tips[1:]) + "."


def _costs(spec: Spec, geometry: Geometry, device: str, measure: bool, notes: list[str]) -> PassCosts:
    if measure and device == "cuda" and not torch.cuda.is_available():
        notes.append("no CUDA device here: memory planned on fake tensors for CUDA, time from counted unroll "
                     "passes instead of timing")
        measure = False
    return measured_costs(spec, geometry, device) if measure else counted_costs(spec)


def plan(spec: Spec, budget: int | str, *, device: str = "cpu", measure: bool = True,
         geometry: Geometry | None = None, with_max_unrolls: bool = False) -> Plan:
    """Estimates every candidate of ``spec`` against ``budget`` bytes per device (an int or a
    size string, e.g. "24GiB") on ``device`` ("cpu" or "cuda") and picks the fastest that fits."""
    budget_bytes = parse_size(budget)
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    geometry = geometry if geometry is not None else geometry_of(spec)
    notes: list[str] = []
    costs = _costs(spec, geometry, device, measure, notes)
    u = spec.model.unrolls
    cands = candidates_of(u, spec.precision)
    rel = relative_times(cands, u, costs)
    estimates = []
    for c in cands:
        report = estimate_step_memory(spec, c.strategy, segments=c.segments, modules=c.modules, device=device,
                                      geometry=geometry)
        estimates.append(Estimate(c, report, rel[c], False))  # fits: decided by with_budget
    result = Plan(budget_bytes, device, geometry, u, costs.how, estimates, None, notes).with_budget(budget_bytes)
    if with_max_unrolls:
        result.max_unrolls = max_unrolls(spec, budget_bytes, device=device, geometry=geometry)
    return result


def _least_memory(strategy: str, unrolls: int) -> Candidate:
    """The candidate of ``strategy`` that needs the least memory at ``unrolls`` (gleam: one
    unroll per module; checkpoint's depends on the sizes, see :func:`max_unrolls`)."""
    if strategy == "gleam":
        return Candidate("gleam", modules=unrolls)
    return Candidate(strategy)


def peak_function(spec: Spec, device: str, geometry: Geometry) -> Callable[[Candidate, int], int]:
    """``peak(candidate, unrolls)``: the estimated peak bytes of ``spec`` in that configuration."""
    def peak(c: Candidate, u: int) -> int:
        return estimate_step_memory(spec, c.strategy, segments=c.segments, modules=c.modules, unrolls=u,
                                    device=device, geometry=geometry).peak_bytes
    return peak


def max_unrolls(spec: Spec, budget: int | str, *, device: str = "cpu", geometry: Geometry | None = None,
                cap: int = 256, peak: Callable[[Candidate, int], int] | None = None) -> dict[str, dict]:
    """Per strategy, the largest unroll count (<= ``cap``) whose least-memory configuration fits
    ``budget``: ``{strategy: {"unrolls": int, "modules": .., "segments": .., "peak_bytes": ..}}``
    (unrolls 0 when not even one fits). The peak is fitted as a + b*U (checkpoint:
    a + b*U/s + c*s, whose best segment size s it picks) from small unroll counts, then the answer
    is checked with a full estimate.
    ``peak(candidate, unrolls)`` replaces that estimate (e.g. a memoized one, for many budgets).
    Fitting leaves the same headroom as :func:`plan` (:func:`usable_bytes`)."""
    budget_bytes = usable_bytes(parse_size(budget))
    geometry = geometry if geometry is not None else geometry_of(spec)
    if peak is None:
        peak = peak_function(spec, device, geometry)

    out = {}
    for strategy in STRATEGY_ORDER:
        if strategy == "invertible" and spec.precision != "fp32":
            continue  # the inverses need full precision (spec rule)
        if strategy == "checkpoint":
            p1, p2, p3 = peak(Candidate("checkpoint", segments=1), 2), peak(Candidate("checkpoint", segments=1), 4), \
                peak(Candidate("checkpoint", segments=2), 4)
            b = (p2 - p1) / 2
            c = p3 - p2 + b * 2        # p(4,2) - p(4,1) = b*(2-4) + c*(2-1)
            a = p1 - 2 * b - c

            def segment(u: int) -> int:
                return min(divisors(u), key=lambda s: a + b * u / s + c * s)

            def model(u: int) -> float:
                s = segment(u)
                return a + b * u / s + c * s
        else:
            x1, x2 = (2, 4)
            p1, p2 = peak(_least_memory(strategy, x1), x1), peak(_least_memory(strategy, x2), x2)
            slope = (p2 - p1) / (x2 - x1)

            def model(u: int, p1=p1, slope=slope, x1=x1) -> float:
                return p1 + slope * (u - x1)
        guess = max((u for u in range(1, cap + 1) if model(u) <= budget_bytes), default=0)

        def checked(u: int, strategy: str = strategy) -> dict | None:
            cand = Candidate("checkpoint", segments=segment(u)) if strategy == "checkpoint" else \
                _least_memory(strategy, u)
            p = peak(cand, u)
            return {"unrolls": u, "modules": cand.modules, "segments": cand.segments, "peak_bytes": int(p),
                    "capped": u == cap} if p <= budget_bytes else None

        # Check the model's answer; when it was optimistic, bisect below it on real estimates
        # (the peak grows with the unroll count): lo fits (or is 0), hi does not.
        best = checked(guess) if guess else None
        if best is None:
            lo, hi = 0, guess
            while hi - lo > 1:
                mid = (lo + hi) // 2
                found = checked(mid)
                if found is not None:
                    best, lo = found, mid
                else:
                    hi = mid
        out[strategy] = best or {"unrolls": 0, "modules": None, "segments": None, "peak_bytes": None, "capped": False}
    return out


def apply_choice(spec: Spec, c: Candidate) -> Spec:
    """``spec`` with the candidate's strategy and options set."""
    spec = dataclasses.replace(spec, strategy=c.strategy, checkpoint=dataclasses.replace(spec.checkpoint),
                               gleam=dataclasses.replace(spec.gleam))
    if c.segments is not None:
        spec.checkpoint.segment = c.segments
    if c.modules is not None:
        spec.gleam.modules = c.modules
    return spec


def resolve_auto(spec: Spec, *, resume_dir: Path | None = None) -> tuple[Spec, str]:
    """For ``strategy: auto``: the spec set to the planner's choice under ``memory_budget`` on
    the spec's device type, and a log line saying what was chosen and why. A resumed run
    (``resume_dir`` holding the resolved spec.yaml of its start) keeps its first choice. Raises
    RuntimeError with the planner's advice when nothing fits."""
    saved = resume_dir / "spec.yaml" if resume_dir is not None else None
    if saved is not None and saved.is_file():
        from ..train.spec import load_spec
        first = load_spec(saved, check_data=False)
        if first.strategy != "auto":
            c = Candidate(first.strategy, first.gleam.modules if first.strategy == "gleam" else None,
                          first.checkpoint.segment if first.strategy == "checkpoint" else None)
            return apply_choice(spec, c), f"strategy auto: resuming with this run's choice, {c.label()}"
    device = torch.device(spec.device).type
    result = plan(spec, spec.memory_budget, device=device)
    if result.choice is None:
        raise RuntimeError(f"strategy auto: {result.advice()}")
    c = result.choice
    line = (f"strategy auto: {c.candidate.label()} (predicted peak {format_size(c.report.peak_bytes)} of "
            f"{format_size(result.budget_bytes)}, {c.relative_time:.2f}x e2e time; {result.timing}); "
            f"equivalent to --set {' --set '.join(c.candidate.overrides())}")
    return apply_choice(spec, c.candidate), line
