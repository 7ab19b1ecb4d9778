"""What fits where: the planner's figure for the example specs at full scale, and the estimate
checked against measured memory.

Usage:
    python benchmarks/plan.py [--budgets 24GiB,40GiB,80GiB] [--examples knee2d,knee3d,cine]
                              [--device cuda] [--cap 64] [--out FILE] [--no-check]

Part 1 (fake tensors, no GPU needed): for each example spec (examples/*.yaml, model and batch as
written) at the full-scale geometry of its data kind (gleam_core.plan.FULL_SCALE: fastMRI knee
15 coils 640x368; 3D knee 8 coils 256x320x320; cine 16 coils 20x256x208), and each budget:
per strategy, the largest unroll count whose least-memory configuration fits, and at the spec's
unroll count the fastest configuration that fits (relative time from counted unroll passes
unless a GPU is present to time one unroll).
Part 2 (CPU, real): one training step in a fresh process per strategy; its peak RSS growth
against the estimate (gleam_core.plan.measure).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from gleam_core.plan import Geometry, estimate_step_memory, geometry_of, plan
from gleam_core.sizes import format_size, parse_size
from gleam_core.plan.accounting import configure
from gleam_core.plan.choice import STRATEGY_ORDER, max_unrolls, peak_function
from gleam_core.plan.measure import measure_step
from gleam_core.train.spec import load_spec, parse_spec
from machine import cpu_model, report

ROOT = Path(__file__).resolve().parents[1]


def memoized(fn):
    cache: dict = {}

    def call(c, u):
        key = (c, u)
        if key not in cache:
            cache[key] = fn(c, u)
        return cache[key]
    call.cache = cache
    return call


def figure(names: list[str], budgets: list[str], device: str, cap: int) -> list[str]:
    lines = []
    for name in names:
        spec = load_spec(ROOT / "examples" / f"{name}.yaml", check_data=False)
        g = geometry_of(spec, full_scale=True)
        d = spec.model.denoiser
        lines += [f"### {name}: {g.describe()}",
                  f"model: {spec.model.type}, {spec.model.unrolls} unrolls, {d.type} denoiser with {d.features} "
                  f"features ({spec.model.conv_kind(g.kind)} convs); target {device}", ""]
        t0 = time.perf_counter()
        peak = memoized(peak_function(spec, device, g))
        base = plan(spec, budgets[0], device=device, measure=torch.cuda.is_available() and device == "cuda",
                    geometry=g)
        for e in base.estimates:  # the max-unrolls search reuses these
            peak.cache[(e.candidate, spec.model.unrolls)] = e.report.peak_bytes
        by_budget = {b: (base.with_budget(b), max_unrolls(spec, b, device=device, geometry=g, cap=cap, peak=peak))
                     for b in budgets}
        first = by_budget[budgets[0]][0]
        lines += [f"peak per configuration at {spec.model.unrolls} unrolls ({first.timing}):", "",
                  "| configuration | peak | time vs e2e |", "|---|---:|---:|"]
        lines += [f"| {e.candidate.label()} | {format_size(e.report.peak_bytes)} | {e.relative_time:.2f}x |"
                  for e in first.estimates]
        lines += ["", "| budget | strategy | largest unroll count that fits | fastest fitting configuration at "
                      f"{spec.model.unrolls} unrolls |", "|---|---|---|---|"]
        for b in budgets:
            result, most = by_budget[b]
            for s in STRATEGY_ORDER:
                m = most[s]
                how = (f", segment {m['segments']}" if m["segments"] else f", {m['modules']} modules"
                       if m["modules"] else "")
                count = f"{m['unrolls']}{'+' if m['capped'] else ''}{how}" if m["unrolls"] else "none"
                fits = [e for e in result.estimates if e.candidate.strategy == s and e.fits]
                best = min(fits, key=lambda e: (e.relative_time, e.report.peak_bytes)) if fits else None
                cell = (f"{best.candidate.label()}: {format_size(best.report.peak_bytes)}, "
                        f"{best.relative_time:.2f}x" if best else "does not fit")
                if best is not None and result.choice is best:
                    cell = f"**{cell}** (choice)"
                lines.append(f"| {b} | {s} | {count} | {cell} |")
        lines += ["", f"({time.perf_counter() - t0:.0f} s of fake-tensor steps for this spec)", ""]
        print("\n".join(lines[-12:]), flush=True)
    return lines


def check(device: str = "cpu") -> list[str]:
    """Part 2: the estimate against the peak growth over one real step in a fresh process (RSS
    on the CPU, ``torch.cuda.max_memory_allocated`` on CUDA)."""
    spec = parse_spec({"data": {"train": {"synthetic": {}}, "val": {"synthetic": {}}}, "schedule": {"iterations": 1},
                       "model": {"unrolls": 8, "denoiser": {"features": 32, "lipschitz": 0.9}}}, check_data=False)
    g = Geometry("2d", 2, 8, 1, (224, 224), (1, 224), source="random data")
    how = ("max_memory_allocated over the step minus the allocated bytes before" if device == "cuda" else
           "peak RSS of a fresh process over the step minus its RSS before (MALLOC_MMAP_THRESHOLD_=65536)")
    lines = [f"One step on {g.describe()} ({device}), PGD 8 unrolls, ResNet 32 features; growth = {how}; predicted = estimated "
             "peak less parameters, batch and optimizer state (resident before / created after the peak).", "",
             "| configuration | predicted growth | measured growth | predicted / measured |", "|---|---:|---:|---:|"]
    rows = {}
    for strategy, options in [("e2e", {}), ("checkpoint", {"segments": 2}), ("invertible", {}),
                              ("gleam", {"modules": 4})]:
        r = estimate_step_memory(spec, strategy, geometry=g, device=device, **options)
        predicted = r.peak_bytes - r.parameters - r.buffers - r.batch - r.optimizer_state
        measured = measure_step(configure(spec, strategy, **options), g, device=device)["growth_bytes"]
        rows[strategy] = (predicted, measured)
        label = strategy + (f" ({next(iter(options.values()))})" if options else "")
        lines.append(f"| {label} | {format_size(predicted)} | {format_size(measured)} | {predicted / measured:.3f} |")
        print(lines[-1], flush=True)
    (pe, me), (pg, mg) = rows["e2e"], rows["gleam"]
    lines += ["", f"Difference e2e - gleam (4 modules): predicted {format_size(pe - pg)}, measured "
                  f"{format_size(me - mg)} (ratio {(pe - pg) / (me - mg):.3f})."]
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budgets", default="24GiB,40GiB,80GiB")
    p.add_argument("--examples", default="knee2d,knee3d,cine")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cuda", help="target device of the plan")
    p.add_argument("--cap", type=int, default=64, help="largest unroll count tried")
    p.add_argument("--out", default=None, help="write the markdown here (atomically)")
    p.add_argument("--no-check", action="store_true", help="skip part 2 (real steps)")
    p.add_argument("--check-device", choices=("cpu", "cuda"), default="cpu",
                   help="where part 2 runs its real steps (cuda: against max_memory_allocated)")
    args = p.parse_args(argv)
    budgets = [b.strip() for b in args.budgets.split(",")]
    for b in budgets:
        parse_size(b)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lines = [f"Planned on {cpu_model()} (torch {torch.__version__}, shared with other work), fake tensors; "
             f"target {args.device}.", ""]
    lines += figure([n.strip() for n in args.examples.split(",")], budgets, args.device, args.cap)
    if not args.no_check:
        lines += [f"### Estimate against measurement ({args.check_device})", ""] + check(args.check_device)
    lines += ["", f"Total {time.perf_counter() - t0:.0f} s."]
    report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
