"""Mixed precision against fp32: activation memory, time per iteration and validation PSNR.

Usage:
    python benchmarks/precision.py [--device cpu|cuda] [--iterations N] [--threads T]
                                   [--precisions bf16,fp16] [--out benchmarks/PRECISION.md]

The 2D configuration of ``benchmarks/strategies.py`` (synthetic knee slices 64x64, 8 coils, 4x
random 1D mask; PGD, 8 unrolls, ResNet F=32 with 2 blocks, batch 2; gleam: 4 modules). For
``e2e`` and ``gleam``, each precision trains the same network (same initial weights, the same
pre-generated batches in the same order) for N iterations and reconstructs the validation set
in float32. Reported, each against fp32 in the same run:
  activations  CPU: the step's peak bytes saved for backward (saved-tensor meter, parameters and
               the batch's constants excluded); CUDA: max_memory_allocated over a step minus
               what was allocated before it (parameters and optimizer state are float32 in
               every precision, so not counted)
  time/iter    median wall time of a training step after 3 warm-up steps (the CPU meter runs in
               every step of every precision alike; CUDA: synchronized)
  val PSNR     mean complex PSNR of the validation reconstructions, one seed
``--precisions`` defaults to bf16 on the CPU (CPUs without native fp16 convolutions run fp16
an order of magnitude slower than fp32) and to bf16,fp16 on CUDA; fp32 always runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from gleam_core.atomic import atomic_write_text
from gleam_core.data import collate
from gleam_core.models import UnrolledNet
from gleam_core.train.batches import BatchStream
from gleam_core.train.datasets import build_dataset, val_loader
from gleam_core.train.evaluation import batch_problem, image_metrics
from gleam_core.train.spec import COMPUTE_DTYPES, parse_spec
from gleam_core.train.strategies import parse_device
from gleam_core.train.trainer import build_strategy
from machine import cpu_model, sync

SYNTH = {"n": 16, "noise": 0.02}
RAW = {
    "data": {"kind": "2d", "batch_size": 2, "val_batch_size": 4,
             "train": {"synthetic": {**SYNTH, "kind": "knee2d", "n": 32, "shape": [64, 64], "coils": 8}},
             "val": {"synthetic": {**SYNTH, "kind": "knee2d", "n": 8, "shape": [64, 64], "coils": 8}}},
    "masks": {"type": "random", "center_fractions": [0.08], "accelerations": [4]},
    "model": {"type": "pgd", "unrolls": 8, "step": 0.5, "denoiser": {"features": 32, "blocks": 2, "out_scale": 0.1}},
    "gleam": {"modules": 4},
    "optimizer": {"lr": 1e-3},
    "output": "/nonexistent",
}


def run_one(strategy_name: str, precision: str, batches: list, val_batches: list, device: torch.device) -> dict:
    spec = parse_spec({**RAW, "device": str(device), "schedule": {"iterations": len(batches)}},
                      [f"strategy={strategy_name}", f"precision={precision}"])
    torch.manual_seed(spec.seed)
    model = UnrolledNet(spec.model, spec.data.kind, int(batches[0]["maps"].shape[2]),
                        spec.gleam.modules if strategy_name == "gleam" else 1)
    model.set_compute_dtype(COMPUTE_DTYPES[precision])
    strategy = build_strategy(spec, model, len(batches), device)
    times, peaks = [], []
    for batch in batches:
        problem, target = batch_problem(batch, spec.data.kind, device)
        sync(device)
        t0 = time.perf_counter()
        result = strategy.train_step(problem, target)
        sync(device)
        times.append(time.perf_counter() - t0)
        peaks.append(result.peak_memory)
    model.set_compute_dtype(None)  # inference in float32, as gleam-eval and gleam-recon run it
    psnr, n = 0.0, 0
    for batch in val_batches:
        problem, target = batch_problem(batch, spec.data.kind, device)
        psnr += float(image_metrics(strategy.reconstruct(problem), target)["psnr"].sum())
        n += target.shape[0]
    return {"peak": max(peaks), "time": statistics.median(times[3:] or times), "psnr": psnr / n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precisions", default=None, help="comma-separated, from bf16 and fp16")
    ap.add_argument("--out", default=str(Path(__file__).with_name("PRECISION.md")))
    args = ap.parse_args(argv)
    if args.iterations < 4:
        ap.error(f"--iterations must be >= 4, got {args.iterations}")
    chosen = args.precisions or ("bf16" if args.device == "cpu" else "bf16,fp16")
    precisions = ["fp32", *chosen.split(",")]
    unknown = [p for p in precisions[1:] if p not in ("bf16", "fp16")]
    if unknown:
        ap.error(f"--precisions: {unknown[0]!r} is not one of bf16, fp16")
    torch.set_num_threads(args.threads)
    device = parse_device(args.device, "--device")
    spec = parse_spec({**RAW, "schedule": {"iterations": args.iterations}})
    train = build_dataset(spec.data.train, "2d", spec.masks, spec.seed, train=True, key="data.train")
    val = build_dataset(spec.data.val, "2d", spec.masks, spec.seed, train=False, key="data.val")
    stream = BatchStream(train, spec.data.batch_size, collate, spec.seed)
    print(f"generating {args.iterations} training batches ...", file=sys.stderr)
    batches = [next(stream) for _ in range(args.iterations)]
    val_batches = list(val_loader(val, spec.data, collate))
    mem = "activations MiB" if device.type == "cpu" else "peak allocated MiB"
    lines = [f"| strategy | precision | {mem} | vs fp32 | time/iter (ms) | vs fp32 | val PSNR (dB) | vs fp32 (dB) |",
             "|---|---|---|---|---|---|---|---|"]
    for name in ("e2e", "gleam"):
        rows = {}
        for precision in precisions:
            print(f"{name} {precision} ...", file=sys.stderr)
            rows[precision] = r = run_one(name, precision, batches, val_batches, device)
            base = rows["fp32"]
            lines.append(f"| {name} | {precision} | {r['peak'] / 2**20:.2f} | {r['peak'] / base['peak']:.2f}x | "
                         f"{1e3 * r['time']:.1f} | {r['time'] / base['time']:.2f}x | {r['psnr']:.2f} | "
                         f"{r['psnr'] - base['psnr']:+.2f} |")
    machine = (f"{cpu_model()}, {args.threads} thread(s), torch {torch.__version__}" if device.type == "cpu"
               else torch.cuda.get_device_name(device))
    text = "\n".join([f"## Mixed precision ({device.type}, {args.iterations} iterations, one seed)", "",
                      f"Machine: {machine}.", "", *lines, ""])
    print(text)
    atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
