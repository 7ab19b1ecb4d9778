"""Benchmark of the four training strategies on one 2D and one 3D configuration.

Usage:
    python benchmarks/strategies.py [--device cpu|cuda] [--iterations N] [--configs 2d,3d]
                                    [--out benchmarks/STRATEGIES.md] [--threads T]

For each configuration every strategy trains the same network (same initial weights, same
batches in the same order, pre-generated so data synthesis is not timed) for a fixed budget
of N iterations, then reconstructs the validation set. Reported per strategy:
  peak memory  CPU: peak bytes saved for backward (saved-tensor hooks, live over forward and
               backward, parameters and the batch's maps/mask/target excluded); CUDA:
               max_memory_allocated over a step minus what was allocated before it
  time/iter    median wall time of a training step after 3 warm-up steps (CUDA: synchronized)
  val PSNR     mean complex PSNR of the validation reconstructions (zero-filled alongside)
Then the paper's comparisons: gleam against e2e with U/M unrolls (the e2e network that fits
in the same memory), and gleam's speed-up over checkpoint and invertible. On CUDA, gleam also
runs with two lanes (two streams on one device, overlapped) against sequential modules.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from gleam_core import ops
from gleam_core.data import collate
from gleam_core.models import UnrolledNet
from gleam_core.atomic import atomic_write_text
from gleam_core.train.batches import BatchStream
from gleam_core.train.datasets import build_dataset, val_loader
from gleam_core.train.evaluation import batch_problem, image_metrics
from gleam_core.train.spec import parse_spec
from gleam_core.train.strategies import parse_device
from gleam_core.train.trainer import build_strategy
from machine import cpu_model

SYNTH = {"n": 16, "noise": 0.02}
CONFIGS = {
    "2d": {
        "title": "2D: synthetic knee slices 64x64, 8 coils, 4x random 1D mask; PGD, 8 unrolls, ResNet F=32 "
                 "(2 blocks), batch 2; gleam: 4 modules of 2 unrolls",
        "data": {"kind": "2d", "batch_size": 2, "val_batch_size": 4,
                 "train": {"synthetic": {**SYNTH, "kind": "knee2d", "n": 32, "shape": [64, 64], "coils": 8}},
                 "val": {"synthetic": {**SYNTH, "kind": "knee2d", "n": 8, "shape": [64, 64], "coils": 8}}},
        "masks": {"type": "random", "center_fractions": [0.08], "accelerations": [4]},
        "model": {"type": "pgd", "unrolls": 8, "step": 0.5,
                  "denoiser": {"features": 32, "blocks": 2, "out_scale": 0.1}},
        "gleam": {"modules": 4},
    },
    "3d": {
        "title": "3D: synthetic knee volumes 16x32x32, 8 coils, 4x Poisson-disc (ky, kz) mask; PGD, 4 unrolls, "
                 "3D ResNet F=16 (1 block), batch 1; gleam: 2 modules of 2 unrolls",
        "data": {"kind": "3d", "batch_size": 1, "val_batch_size": 1,
                 "train": {"synthetic": {**SYNTH, "kind": "knee3d", "n": 12, "shape": [16, 32, 32], "coils": 8}},
                 "val": {"synthetic": {**SYNTH, "kind": "knee3d", "n": 2, "shape": [16, 32, 32], "coils": 8}}},
        "masks": {"type": "poisson", "acceleration": 4, "calib": [8, 8]},
        "model": {"type": "pgd", "unrolls": 4, "step": 0.5,
                  "denoiser": {"features": 16, "blocks": 1, "out_scale": 0.1}},
        "gleam": {"modules": 2},
    },
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(raw: dict, overrides: list[str], batches: list, val_batches: list, device: torch.device) -> dict:
    """Trains one strategy on the pre-generated batches; returns its measurements."""
    spec = parse_spec(raw, overrides)
    torch.manual_seed(spec.seed)
    map_sets = int(batches[0]["maps"].shape[2])
    share_groups = spec.gleam.modules if spec.strategy == "gleam" else 1
    model = UnrolledNet(spec.model, spec.data.kind, map_sets, share_groups)
    strategy = build_strategy(spec, model, len(batches), device)
    times, peaks, extra = [], [], {}
    for batch in batches:
        problem, target = batch_problem(batch, spec.data.kind, device)
        sync(device)
        t0 = time.perf_counter()
        result = strategy.train_step(problem, target)
        sync(device)
        times.append(time.perf_counter() - t0)
        peaks.append(result.peak_memory)
        stats = result.resolve()
        extra = {k: stats[k] for k in ("inversion_error",) if k in stats}
    psnr, psnr_zf, n = 0.0, 0.0, 0
    for batch in val_batches:
        problem, target = batch_problem(batch, spec.data.kind, device)
        recon = strategy.reconstruct(problem)
        psnr += float(image_metrics(recon, target)["psnr"].sum())
        psnr_zf += float(image_metrics(problem.ahy, target)["psnr"].sum())
        n += target.shape[0]
    return {"peak": max(peaks), "time": statistics.median(times[3:] or times), "psnr": psnr / n,
            "psnr_zf": psnr_zf / n, "params": sum(p.numel() for p in model.parameters()), **extra}


def benchmark(name: str, cfg: dict, device: torch.device, iterations: int) -> tuple[list, dict]:
    raw = {k: v for k, v in cfg.items() if k != "title"}
    raw.update({"device": str(device), "output": "/nonexistent", "schedule": {"iterations": iterations},
                "optimizer": {"lr": 1e-3}})
    spec = parse_spec(raw)
    train = build_dataset(spec.data.train, spec.data.kind, spec.masks, spec.seed, train=True, key="data.train")
    val = build_dataset(spec.data.val, spec.data.kind, spec.masks, spec.seed, train=False, key="data.val")
    stream = BatchStream(train, spec.data.batch_size, collate, spec.seed)
    print(f"[{name}] generating {iterations} training batches ...", file=sys.stderr)
    batches = [next(stream) for _ in range(iterations)]
    val_batches = list(val_loader(val, spec.data, collate))
    u, m = spec.model.unrolls, spec.gleam.modules
    # The invertible strategy needs contractive denoisers (else its inverse diverges within tens of
    # iterations and training blows up), so its network caps f's Lipschitz constant at 0.9.
    runs = [("e2e", ["strategy=e2e"]), ("checkpoint", ["strategy=checkpoint"]),
            ("invertible", ["strategy=invertible", "model.denoiser.lipschitz=0.9"]), ("gleam", ["strategy=gleam"]),
            (f"e2e, {u // m} unrolls", ["strategy=e2e", f"model.unrolls={u // m}"]),
            # The paper's pairing: a deeper gleam network with modules of the same size (so the
            # same memory) as the shallow e2e network.
            (f"gleam, {2 * u} unrolls", ["strategy=gleam", f"model.unrolls={2 * u}", f"gleam.modules={2 * m}"])]
    if device.type == "cuda":
        runs.append(("gleam, 2 streams", ["strategy=gleam", f"gleam.devices=[{device}, {device}]",
                                          "gleam.overlap=true"]))
    rows = []
    for label, overrides in runs:
        print(f"[{name}] {label} ...", file=sys.stderr)
        rows.append((label, run_one(raw, overrides, batches, val_batches, device)))
    return rows, {"unrolls": u, "modules": m}


def mib(n: float) -> str:
    return f"{n / 2**20:.2f}"


def report(name: str, title: str, rows: list, info: dict, kind: str) -> str:
    by = dict(rows)
    mem = "saved-for-backward MiB" if kind == "cpu" else "peak allocated MiB"
    lines = [f"### {name}", "", title, "", f"| strategy | {mem} | time/iter (ms) | val PSNR (dB) | params |",
             "|---|---:|---:|---:|---:|"]
    for label, r in rows:
        note = f" (inversion error {r['inversion_error']:.1e})" if "inversion_error" in r else ""
        lines.append(f"| {label} | {mib(r['peak'])} | {r['time'] * 1e3:.1f} | {r['psnr']:.2f}{note} | "
                     f"{r['params']} |")
    zf = rows[0][1]["psnr_zf"]
    g = by["gleam"]
    u, m = info["unrolls"], info["modules"]
    small, deep = by[f"e2e, {u // m} unrolls"], by[f"gleam, {2 * u} unrolls"]
    lines += ["", f"Zero-filled val PSNR: {zf:.2f} dB.", "",
              f"- Equal memory (paper: +1.1 dB 2D, +1.8 dB 3D): gleam ({u} unrolls, {m} modules, {mib(g['peak'])} MiB) "
              f"vs e2e with {u // m} unrolls ({mib(small['peak'])} MiB): **{g['psnr'] - small['psnr']:+.2f} dB**; "
              f"gleam with {2 * u} unrolls in {2 * m} modules ({mib(deep['peak'])} MiB): "
              f"**{deep['psnr'] - small['psnr']:+.2f} dB**.",
              f"- Speed: gleam {g['time'] * 1e3:.1f} ms/iter is **{by['checkpoint']['time'] / g['time']:.2f}x** "
              f"faster than checkpoint and **{by['invertible']['time'] / g['time']:.2f}x** faster than invertible "
              f"(paper: 1.3x over checkpointing); e2e {by['e2e']['time'] / g['time']:.2f}x gleam's time.",
              f"- Memory vs e2e ({mib(by['e2e']['peak'])} MiB): gleam {g['peak'] / by['e2e']['peak']:.2f}x, "
              f"checkpoint {by['checkpoint']['peak'] / by['e2e']['peak']:.2f}x, invertible "
              f"{by['invertible']['peak'] / by['e2e']['peak']:.2f}x."]
    if "gleam, 2 streams" in by:
        two = by["gleam, 2 streams"]
        lines.append(f"- Two CUDA streams on one device: {two['time'] * 1e3:.1f} ms/iter vs sequential "
                     f"{g['time'] * 1e3:.1f} ms/iter ({g['time'] / two['time']:.2f}x).")
    return "\n".join(lines) + "\n"


def machine(device: torch.device) -> str:
    text = (f"Machine: {cpu_model()}, {torch.get_num_threads()} torch threads; torch {torch.__version__}; "
            f"gleam_core ops backend {ops.backend()}")
    if device.type == "cuda":
        text += f"; GPU {torch.cuda.get_device_name(device)}"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--iterations", type=int, default=300, help="training budget per strategy")
    p.add_argument("--configs", default="2d,3d")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="benchmarks/STRATEGIES.md")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = parse_device(args.device, "--device")
    sections = [f"# Training strategies ({device.type})", "", machine(device), "",
                f"Budget: {args.iterations} iterations per strategy on the same pre-generated batches; Adam, "
                "lr 1e-3, complex L1 loss. Produced by `python benchmarks/strategies.py "
                + " ".join(argv if argv is not None else sys.argv[1:]) + "`.", ""]
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        rows, info = benchmark(name, cfg, device, args.iterations)
        text = report(name, cfg["title"], rows, info, device.type)
        print(text)
        sections.append(text)
    atomic_write_text(args.out, "\n".join(sections))
    print(f"written {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
