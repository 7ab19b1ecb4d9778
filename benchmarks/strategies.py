"""A fair benchmark of the four training strategies (end-to-end, checkpointing, invertible, GLEAM).

Usage:
    python benchmarks/strategies.py [--configs 2d,3d] [--iterations N] [--seeds 0,1,2]
        [--set 2d:model.denoiser.features=100 ...] [--out benchmarks/STRATEGIES.md]

Three passes per configuration, in one process:
  memory    full training-step memory of every row (parameters + gradients + optimizer state +
            activations + temporaries/workspace), measured over two real steps with torch's
            MemTracker; the equal-memory pairs are chosen with this memory function
            (:func:`pair_by_memory` takes any ``spec overrides -> bytes`` function).
  time      fresh models, every timed row interleaved round by round (the machine may be shared:
            interleaving spreads its load over all rows); median step time; no memory meters
            or hooks and no diagnostic inverses (``train.memory.no_metering``, invertible
            ``diagnostics`` off).
  accuracy  each accuracy row trained for N iterations per seed (meters off), validation PSNR
            every ``--val-every`` iterations (the curves go to a PNG); PSNR differences of the
            pairs as mean +- std over the seeds (the seed sets initial weights and batch order;
            the data are the same).

Baselines as their authors ran them: checkpointing as ``torch.utils.checkpoint`` users do
(non-reentrant, early stop, last segment not recomputed); invertible (MEL) with ~5 fixed-point
iterations per residual inverse (``invertible.iters``) and i-ResNet's Lipschitz control (power
iteration on each convolution's operator, ``model.denoiser.lipschitz``); a control row trains
e2e with the same bounded denoiser, separating the constraint's cost from the inversion's.
Pairs: gleam (U unrolls, M modules) against the e2e depth whose full memory is closest to
gleam's, and the paper's own pairing: e2e with N unrolls against gleam with 3N unrolls in 3
modules; for time, checkpointing with the segment whose full memory is closest to gleam's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from gleam_core import ops
from gleam_core.atomic import atomic_open, atomic_write_text
from gleam_core.data import collate
from gleam_core.models import UnrolledNet
from gleam_core.train.batches import BatchStream
from gleam_core.train.datasets import build_dataset, val_loader
from gleam_core.train.evaluation import batch_problem, image_metrics
from gleam_core.train.memory import no_metering
from gleam_core.train.spec import parse_spec
from gleam_core.train.strategies import parse_device
from gleam_core.train.trainer import build_strategy
from machine import cpu_model

LIPSCHITZ = 0.9     # cap on f's Lipschitz constant for invertible and its e2e control
MEL_ITERS = 5       # fixed-point iterations per residual inverse, as MEL's authors ran it

CONFIGS = {
    "2d": {
        "title": "2D: synthetic knee slices {shape}, {coils} coils, 4x random 1D mask; PGD, {unrolls} unrolls, "
                 "ResNet F={features} ({blocks} blocks); batch {batch}; gleam: {modules}",
        "raw": {"data": {"kind": "2d", "batch_size": 1, "val_batch_size": 4,
                         "train": {"synthetic": {"kind": "knee2d", "n": 48, "shape": [192, 192], "coils": 8,
                                                 "noise": 0.02, "seed": 1000}},
                         "val": {"synthetic": {"kind": "knee2d", "n": 8, "shape": [192, 192], "coils": 8,
                                               "noise": 0.02, "seed": 2000}}},
                "masks": {"type": "random", "center_fractions": [0.08], "accelerations": [4]},
                "model": {"type": "pgd", "unrolls": 6, "step": 0.5,
                          "denoiser": {"features": 16, "blocks": 2, "out_scale": 0.1}},
                "gleam": {"modules": 3}},
    },
    "3d": {
        "title": "3D: synthetic knee volumes {shape}, {coils} coils, 4x Poisson-disc (ky, kz) mask; PGD, {unrolls} "
                 "unrolls, 3D ResNet F={features} ({blocks} blocks); batch {batch}; gleam: {modules}",
        "raw": {"data": {"kind": "3d", "batch_size": 1, "val_batch_size": 1,
                         "train": {"synthetic": {"kind": "knee3d", "n": 12, "shape": [32, 64, 64], "coils": 8,
                                                 "noise": 0.02, "seed": 1000}},
                         "val": {"synthetic": {"kind": "knee3d", "n": 2, "shape": [32, 64, 64], "coils": 8,
                                               "noise": 0.02, "seed": 2000}}},
                "masks": {"type": "poisson", "acceleration": 4, "calib": [12, 12]},
                "model": {"type": "pgd", "unrolls": 3, "step": 0.5,
                          "denoiser": {"features": 8, "blocks": 1, "out_scale": 0.1}},
                "gleam": {"modules": 3}},
    },
}

MemoryFn = Callable[[list[str]], int]


class _NoModuleTracking:
    """Stands in for MemTracker's module tracker: no hooks, always 'forward, global scope'."""

    parents = {"Global"}
    is_bw = False

    def register_user_hooks(self, *hooks) -> None: ...

    def clear_user_hooks(self) -> None: ...

    def get_known_fqn(self, module) -> None: ...

    def __enter__(self) -> "_NoModuleTracking":
        return self

    def __exit__(self, *exc) -> None: ...


class Bench:
    """One configuration: its spec, cached data, and the three passes."""

    def __init__(self, name: str, raw: dict, overrides: list[str], device: torch.device, iterations: int) -> None:
        self.name, self.device, self.iterations = name, device, iterations
        self.raw = {**raw, "device": str(device), "output": "/nonexistent",
                    "schedule": {"iterations": iterations}, "optimizer": {"lr": 1e-3}}
        self.base = list(overrides)
        spec = self.spec([])
        self.kind = spec.data.kind
        print(f"[{name}] generating data ...", file=sys.stderr, flush=True)
        train = build_dataset(spec.data.train, self.kind, spec.masks, spec.seed, train=True, key="data.train")
        val = build_dataset(spec.data.val, self.kind, spec.masks, spec.seed, train=False, key="data.val")
        # Items cached once (each with its own fixed mask), so data synthesis is never timed.
        self.train = [train[i] for i in range(len(train))]
        self.val = list(val_loader(val, spec.data, collate))
        self.batch_size = spec.data.batch_size

    def spec(self, overrides: list[str]):
        return parse_spec(self.raw, self.base + overrides)

    def stream(self, seed: int) -> BatchStream:
        return BatchStream(self.train, self.batch_size, collate, seed)

    def build(self, overrides: list[str], seed: int = 0):
        spec = self.spec([*overrides, f"seed={seed}"])
        torch.manual_seed(seed)
        share = spec.gleam.modules if spec.strategy == "gleam" else 1
        model = UnrolledNet(spec.model, self.kind, int(self.train[0]["maps"].shape[1]), share)
        strategy = build_strategy(spec, model, self.iterations, self.device)
        if spec.strategy == "invertible":
            strategy.diagnostics = False
        return spec, model, strategy

    def problem(self, batch: dict):
        return batch_problem(batch, self.kind, self.device)

    # -- memory pass ------------------------------------------------------------------------
    def measured_memory(self, overrides: list[str]) -> dict[str, float]:
        """Full memory of a training step (bytes by MemTracker category, and "total" at the
        peak), measured on the CPU over two steps, so Adam's state exists at the second."""
        from torch.distributed._tools.mem_tracker import MemTracker
        spec, model, strategy = self.build(overrides)
        stream = self.stream(0)
        tracker = MemTracker()
        if spec.strategy == "invertible":
            # Its backward calls autograd.grad, which MemTracker's module hooks refuse; without
            # them the total is the same, but backward temporaries count as activations.
            tracker._mod_tracker = _NoModuleTracking()
        tracker.track_external(model)
        with tracker, no_metering():
            for _ in range(2):
                strategy.train_step(*self.problem(next(stream)))
                if spec.strategy != "invertible":
                    tracker.reset_mod_stats()
        snap = tracker.get_tracker_snapshot("peak")
        dev = next(iter(snap))
        return {str(getattr(k, "value", k)).lower(): float(v) for k, v in snap[dev].items()}

    # -- time pass --------------------------------------------------------------------------
    def time_rows(self, rows: dict[str, list[str]], rounds: int, steps: int) -> dict[str, list[float]]:
        """Per row, the wall times of ``rounds * steps`` training steps, rows interleaved round by
        round (each round runs ``steps`` steps of every row), after one warm-up step each."""
        built = {label: self.build(ov)[2] for label, ov in rows.items()}
        stream = self.stream(0)
        batches = [self.problem(next(stream)) for _ in range(steps)]
        times: dict[str, list[float]] = {label: [] for label in rows}
        with no_metering():
            for label, strategy in built.items():
                strategy.train_step(*batches[0])
            for r in range(rounds):
                order = list(built) if r % 2 == 0 else list(reversed(built))
                for label in order:
                    for problem, target in batches:
                        t0 = time.perf_counter()
                        strategy = built[label]
                        strategy.train_step(problem, target)
                        if self.device.type == "cuda":
                            torch.cuda.synchronize(self.device)
                        times[label].append(time.perf_counter() - t0)
                print(f"[{self.name}] timing round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        return times

    # -- accuracy pass ----------------------------------------------------------------------
    def validate(self, strategy) -> float:
        psnr, n = 0.0, 0
        for batch in self.val:
            problem, target = self.problem(batch)
            psnr += float(image_metrics(strategy.reconstruct(problem), target)["psnr"].sum())
            n += target.shape[0]
        return psnr / n

    def zero_filled(self) -> float:
        psnr, n = 0.0, 0
        for batch in self.val:
            problem, target = self.problem(batch)
            psnr += float(image_metrics(problem.ahy, target)["psnr"].sum())
            n += target.shape[0]
        return psnr / n

    def train_rows(self, rows: dict[str, list[str]], seed: int, val_every: int) -> dict[str, dict]:
        """Trains the rows side by side (one step of each per iteration, same batches); returns
        per row its validation curve [(iteration, PSNR)], seconds of training, and (invertible)
        the inversion error measured at each validation point."""
        built = {label: self.build(ov, seed) for label, ov in rows.items()}
        out = {label: {"curve": [], "seconds": 0.0, "inversion_error": []} for label in rows}
        stream = self.stream(seed)
        with no_metering():
            for it in range(1, self.iterations + 1):
                problem, target = self.problem(next(stream))
                check = it % val_every == 0 or it == self.iterations
                for label, (spec, _, strategy) in built.items():
                    diag = check and spec.strategy == "invertible"
                    if diag:
                        strategy.diagnostics = True
                    t0 = time.perf_counter()
                    result = strategy.train_step(problem, target)
                    out[label]["seconds"] += time.perf_counter() - t0
                    if diag:
                        strategy.diagnostics = False
                        out[label]["inversion_error"].append(result.resolve()["inversion_error"])
                    if check:
                        out[label]["curve"].append((it, self.validate(strategy)))
                if check:
                    print(f"[{self.name}] seed {seed} it {it}: " + ", ".join(
                        f"{label} {r['curve'][-1][1]:.2f}" for label, r in out.items()), file=sys.stderr, flush=True)
        return out


def pair_by_memory(memory: MemoryFn, target: int, candidates: list[tuple[int, list[str]]]) -> tuple[int, int]:
    """Among ``candidates`` (value, overrides), sorted by increasing memory, the value whose
    ``memory(overrides)`` is closest to ``target`` bytes, by bisection (memory grows with the
    value); returns (value, its memory). ``memory`` is any full-memory function."""
    lo, hi = 0, len(candidates) - 1
    cache: dict[int, int] = {}

    def mem(i: int) -> int:
        if i not in cache:
            cache[i] = memory(candidates[i][1])
        return cache[i]
    while lo < hi:
        mid = (lo + hi) // 2
        if mem(mid) < target:
            lo = mid + 1
        else:
            hi = mid
    best = min((i for i in (lo - 1, lo) if 0 <= i < len(candidates)), key=lambda i: abs(mem(i) - target))
    return candidates[best][0], mem(best)


def mean_std(xs: list[float]) -> str:
    if len(xs) == 1:
        return f"{xs[0]:+.2f} (1 seed)"
    return f"{statistics.mean(xs):+.2f} ± {statistics.stdev(xs):.2f}"


def plot_curves(curves: dict[str, list[list[tuple[int, float]]]], title: str, path: Path) -> None:
    """Validation PSNR against iteration, one line per row (mean over seeds), as a PNG."""
    w, h, left, right, top, bottom = 900, 520, 60, 250, 30, 40
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    means = {}
    for label, runs in curves.items():
        its = [i for i, _ in runs[0]]
        means[label] = (its, [statistics.mean(run[k][1] for run in runs) for k in range(len(its))])
    xs = [x for its, _ in means.values() for x in its]
    ys = [y for _, vals in means.values() for y in vals]
    x0, x1 = 0, max(xs)
    y0, y1 = min(ys) - 0.5, max(ys) + 0.5

    def px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - x0) / (x1 - x0) * (w - left - right),
                top + (y1 - y) / (y1 - y0) * (h - top - bottom))
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    for k in range(6):
        y = y0 + (y1 - y0) * k / 5
        draw.text((5, px(0, y)[1] - 6), f"{y:.1f}", fill="black")
        x = x0 + (x1 - x0) * k / 5
        draw.text((px(x, y0)[0] - 10, h - bottom + 5), f"{x:.0f}", fill="black")
    draw.text((left, 8), title + "  (val PSNR dB vs iteration, mean over seeds)", fill="black")
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f"]
    for k, (label, (its, vals)) in enumerate(means.items()):
        c = colors[k % len(colors)]
        draw.line([px(x, y) for x, y in zip(its, vals)], fill=c, width=2)
        draw.text((w - right + 10, top + 18 * k), f"{label}: {vals[-1]:.2f}", fill=c)
    with atomic_open(path, "wb") as f:
        img.save(f, format="PNG")


def mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def run_config(name: str, args, device: torch.device, out_dir: Path) -> str:
    cfg = CONFIGS[name]
    overrides = [s.split(":", 1)[1] for s in args.set if s.split(":", 1)[0] == name]
    bench = Bench(name, cfg["raw"], overrides, device, args.iterations)
    spec = bench.spec([])
    u, m = spec.model.unrolls, spec.gleam.modules
    k = u // m
    syn = spec.data.train.synthetic
    title = cfg["title"].format(shape="x".join(map(str, syn["shape"])), coils=syn["coils"], unrolls=u,
                                features=spec.model.denoiser.features, blocks=spec.model.denoiser.blocks,
                                batch=spec.data.batch_size, modules=f"{m} modules of {k} unrolls")
    bounded = [f"model.denoiser.lipschitz={LIPSCHITZ}"]
    invertible = ["strategy=invertible", *bounded, f"invertible.iters={MEL_ITERS}"]

    # Memory pass: every row's full memory; pairs chosen by it.
    mem_cache: dict[tuple, dict] = {}

    def measured(ov: list[str]) -> dict:
        key = tuple(ov)
        if key not in mem_cache:
            print(f"[{name}] memory {' '.join(ov)} ...", file=sys.stderr, flush=True)
            mem_cache[key] = bench.measured_memory(ov)
        return mem_cache[key]

    def memory_fn(ov: list[str]) -> int:
        return int(measured(ov)["total"])

    gleam_ov = ["strategy=gleam"]
    gleam_mem = memory_fn(gleam_ov)
    n_eq, _ = pair_by_memory(memory_fn, gleam_mem,
                             [(n, ["strategy=e2e", f"model.unrolls={n}"]) for n in range(1, u + 1)])
    segs = [s for s in range(1, u + 1) if u % s == 0]
    seg_eq, _ = pair_by_memory(memory_fn, gleam_mem,
                               [(s, ["strategy=checkpoint", f"checkpoint.segment={s}"]) for s in segs])
    paper = m == 3  # gleam's own rows are the paper's 3N-in-3-modules pairing with N = K
    rows_time = {"e2e": ["strategy=e2e"], "checkpoint (segment 1)": ["strategy=checkpoint"]}
    if seg_eq != 1:
        rows_time[f"checkpoint (segment {seg_eq})"] = ["strategy=checkpoint", f"checkpoint.segment={seg_eq}"]
    rows_time.update({"invertible": invertible, "e2e, bounded f": ["strategy=e2e", *bounded], "gleam": gleam_ov})
    acc_rows = {"e2e": ["strategy=e2e"], "gleam": gleam_ov, f"e2e, {n_eq} unrolls": ["strategy=e2e",
                                                                                        f"model.unrolls={n_eq}"]}
    if paper and n_eq != k:
        acc_rows[f"e2e, {k} unrolls"] = ["strategy=e2e", f"model.unrolls={k}"]
    if args.accuracy_rows == "all":
        acc_rows.update({"invertible": invertible, "e2e, bounded f": ["strategy=e2e", *bounded]})
    mem_rows = {**rows_time, **{lab: ov for lab, ov in acc_rows.items() if lab not in rows_time}}
    memory = {label: measured(ov) for label, ov in mem_rows.items()}

    times = bench.time_rows(rows_time, args.timing_rounds, args.timing_steps)
    med = {label: statistics.median(ts) for label, ts in times.items()}

    seeds = [int(s) for s in args.seeds.split(",")]
    results: dict[str, list[dict]] = {label: [] for label in acc_rows}
    for i, seed in enumerate(seeds):
        rows = acc_rows if i == 0 or args.seed_rows == "all" else {
            lab: ov for lab, ov in acc_rows.items() if lab not in ("invertible", "e2e, bounded f")}
        for label, r in bench.train_rows(rows, seed, args.val_every).items():
            results[label].append(r)
    zf = bench.zero_filled()
    png = out_dir / f"strategies_{name}_curves.png"
    plot_curves({lab: [r["curve"] for r in rs] for lab, rs in results.items()}, name, png)

    def finals(label: str) -> list[float]:
        return [r["curve"][-1][1] for r in results[label]]

    def diffs(a: str, b: str) -> list[float]:
        n = min(len(results[a]), len(results[b]))
        return [x - y for x, y in zip(finals(a)[:n], finals(b)[:n])]

    seed_note = ("invertible and its control not trained" if args.accuracy_rows == "pairs" else
                 "all rows" if args.seed_rows == "all" else "invertible and its control on the first seed only")
    lines = [f"### {name}", "", title + ".", "",
             f"Seeds {args.seeds} ({seed_note}); "
             f"{args.iterations} iterations, validation every {args.val_every}; zero-filled val PSNR {zf:.2f} dB. "
             f"Curves: `{png.name}`.", "",
             "| row | full memory MiB (params / grads / optimizer / activations / temp) | time/iter ms (median) | "
             "val PSNR dB (mean ± std) |", "|---|---:|---:|---:|"]
    for label in dict.fromkeys([*rows_time, *acc_rows]):
        mm = memory[label]
        parts = " / ".join(mib(mm.get(c, 0.0)) for c in ("parameter", "gradient", "optstate", "activation", "temp"))
        t = f"{med[label] * 1e3:.0f}" if label in med else "–"
        if label in results and results[label]:
            f = finals(label)
            p = f"{statistics.mean(f):.2f}" + (f" ± {statistics.stdev(f):.2f}" if len(f) > 1 else "")
            if label == "invertible":
                errs = [e for r in results[label] for e in r["inversion_error"]]
                p += f" (inversion error ≤ {max(errs):.1e})"
        else:
            p = "= e2e (same gradients)" if label.startswith("checkpoint") else "–"
        lines.append(f"| {label} | {mib(mm['total'])} ({parts}) | {t} | {p} |")
    e2e_curve = [statistics.mean(v) for v in zip(*[[y for _, y in r["curve"]] for r in results["e2e"]])]
    quarter = max(1, len(e2e_curve) // 4)
    curve_its = [i for i, _ in results["e2e"][0]["curve"]]
    late_from = curve_its[-1 - quarter] if len(curve_its) > quarter else 0
    late_gain = e2e_curve[-1] - e2e_curve[-1 - quarter] if len(e2e_curve) > quarter else float("nan")
    ck_eq = f"checkpoint (segment {seg_eq})" if seg_eq != 1 else "checkpoint (segment 1)"
    lines += ["",
              f"- Plateau check: e2e gained {late_gain:+.2f} dB over the last quarter of training "
              f"(iterations {late_from}–{args.iterations}).",
              f"- Equal full memory: gleam ({u} unrolls, {m} modules, {mib(gleam_mem)} MiB) vs e2e with {n_eq} "
              f"unrolls ({mib(memory[f'e2e, {n_eq} unrolls']['total'])} MiB): "
              f"**{mean_std(diffs('gleam', f'e2e, {n_eq} unrolls'))} dB** (paper: +1.1 dB 2D, +1.8 dB 3D)."]
    if paper:
        lines.append(f"- Paper's pairing (e2e N = {k} unrolls vs gleam 3N = {u} unrolls in 3 modules): "
                     f"**{mean_std(diffs('gleam', f'e2e, {k} unrolls'))} dB**.")
    lines.append(f"- gleam vs e2e of the same depth ({u} unrolls): {mean_std(diffs('gleam', 'e2e'))} dB.")
    if "invertible" in results:
        lines.append(f"- invertible vs e2e: {mean_std(diffs('invertible', 'e2e'))} dB, of which the Lipschitz "
                     f"constraint (e2e, bounded f vs e2e) {mean_std(diffs('e2e, bounded f', 'e2e'))} dB and the "
                     f"inversion (invertible vs e2e, bounded f) {mean_std(diffs('invertible', 'e2e, bounded f'))} dB.")
    lines += [
              f"- Speed (paper: gleam 1.3x faster than checkpointing and invertible at equal memory): gleam "
              f"{med['gleam'] * 1e3:.0f} ms/iter; {ck_eq} (closest full memory to gleam: "
              f"{mib(memory[ck_eq]['total'])} MiB) **{med[ck_eq] / med['gleam']:.2f}x** gleam's time; checkpoint "
              f"(segment 1) {med['checkpoint (segment 1)'] / med['gleam']:.2f}x; invertible "
              f"**{med['invertible'] / med['gleam']:.2f}x** ({mib(memory['invertible']['total'])} MiB), its "
              f"control e2e, bounded f {med['e2e, bounded f'] / med['gleam']:.2f}x; e2e "
              f"{med['e2e'] / med['gleam']:.2f}x ({mib(memory['e2e']['total'])} MiB).",
              f"- Timing: {args.timing_rounds} interleaved rounds x {args.timing_steps} steps per row after a "
              f"warm-up step; spread (max/min of the per-row medians over rounds) "
              f"{max(round_spread(times[lab], args.timing_steps) for lab in times):.2f}."]
    return "\n".join(lines) + "\n"


def round_spread(ts: list[float], steps: int) -> float:
    meds = [statistics.median(ts[i:i + steps]) for i in range(0, len(ts), steps)]
    return max(meds) / min(meds)


def machine(device: torch.device) -> str:
    text = (f"Machine: {cpu_model()}, {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
            f"gleam_core ops backend {ops.backend()}")
    if device.type == "cuda":
        text += f"; GPU {torch.cuda.get_device_name(device)}"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--configs", default="2d,3d")
    p.add_argument("--iterations", type=int, default=1000, help="training iterations per row and seed")
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--seed-rows", choices=("all", "pairs"), default="all",
                   help="pairs: seeds after the first train only e2e, gleam and their pairs")
    p.add_argument("--accuracy-rows", choices=("all", "pairs"), default="all",
                   help="pairs: invertible and its control are measured for memory and time but not trained")
    p.add_argument("--timing-rounds", type=int, default=5)
    p.add_argument("--timing-steps", type=int, default=3)
    p.add_argument("--set", action="append", default=[], metavar="CONFIG:KEY=VALUE",
                   help="spec override for one configuration, e.g. 2d:model.denoiser.features=100")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="benchmarks/STRATEGIES.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for s in args.set:
        if ":" not in s or s.split(":", 1)[0] not in CONFIGS or "=" not in s:
            p.error(f"--set expects CONFIG:KEY=VALUE with CONFIG in {sorted(CONFIGS)}, got {s!r}")
    names = args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"--configs: unknown {unknown}; choose from {sorted(CONFIGS)}")
    device = parse_device(args.device, "--device")
    out = Path(args.out)
    sections = [f"# Training strategies ({device.type})", "", machine(device), "",
                "Produced by `python benchmarks/strategies.py " + " ".join(argv if argv is not None else sys.argv[1:])
                + f"`. Adam, lr 1e-3 constant, complex L1 loss. Invertible: Lipschitz cap {LIPSCHITZ} on f "
                f"(power iteration per convolution), {MEL_ITERS} fixed-point iterations per inverse.", ""]
    for name in names:
        t0 = time.time()
        text = run_config(name, args, device, out.parent)
        text += f"\n({name}: {(time.time() - t0) / 60:.0f} min wall.)\n"
        print(text, flush=True)
        sections.append(text)
        atomic_write_text(out, "\n".join(sections))
    print(f"written {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
