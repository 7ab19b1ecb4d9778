"""Throughput of module-parallel GLEAM: one process vs two processes (a 2-stage pipeline).

Usage:
    python benchmarks/distributed.py [--iterations 40] [--warmup 5] [--repeats 2] [--depths 1,2]
                                     [--shape 96] [--features 64] [--out benchmarks/DISTRIBUTED.md]

The model has 2 balanced modules (2 unrolls of PGD with a ResNet denoiser, gleam.modules 2).
Every process uses one thread (OMP_NUM_THREADS=1, spec threads 1). Both configurations run
through the real entry point, ``gleam-train`` (one process) and ``torchrun --nproc-per-node 2
gleam-train`` with ``distributed.stages: 2`` (module-parallel, gloo), on the same synthetic
data generated on the fly (each pipeline stage generates every batch itself, as in
production), and log one train record per iteration. Throughput (batches/s) is counted over
the iterations after ``--warmup``:
  1 process:   iterations / sum of step_time_s (the trainer's wall time per iteration over
               each logging interval, here one iteration: loading, step, records)
  2 processes: iterations / the larger of the two stages' summed stage_step_s (each stage's
               wall time per iteration over the same intervals: everything counted,
               including waits for hand-offs and credits)
Each configuration runs ``--repeats`` times, interleaved; the best and the median run of each
are reported (the machine is shared), and every run is listed. The table goes to stdout and ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from machine import cpu_model

REPO = Path(__file__).resolve().parents[1]


def make_spec(args: argparse.Namespace, out_dir: Path) -> Path:
    shape, n = [args.shape, args.shape], args.iterations
    spec = {
        "output": str(out_dir / "unused"), "seed": 0, "threads": 1, "strategy": "gleam",
        "data": {"kind": "2d", "batch_size": args.batch_size, "val_batch_size": 2,
                 "train": {"synthetic": {"kind": "knee2d", "n": 32, "shape": shape, "coils": args.coils}},
                 "val": {"synthetic": {"kind": "knee2d", "n": 2, "shape": shape, "coils": args.coils}}},
        "masks": {"type": "random", "center_fractions": [0.08], "accelerations": [4]},
        "model": {"type": "pgd", "unrolls": 2, "step": 0.5,
                  "denoiser": {"type": "resnet", "features": args.features, "blocks": 2, "out_scale": 0.1}},
        "gleam": {"modules": 2},
        "optimizer": {"name": "adam", "lr": 1e-4},
        "schedule": {"iterations": n, "val_every": n, "val_batches": 1, "checkpoint_every": n, "keep_last": 1},
        "logging": {"every": 1, "progress": False, "tensorboard": False, "images": False},
    }
    path = out_dir / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run(cmd: list[str], out: Path) -> list[dict]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("GLEAM_FAULT", None)
    proc = subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        sys.exit(f"benchmark run failed ({' '.join(cmd)}):\n{proc.stdout[-4000:]}")
    return [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["split"] == "train"]


def measure_single(spec: Path, out: Path, warmup: int) -> dict:
    recs = run([sys.executable, "-m", "gleam_core.cli.train", "--spec", str(spec), "--set", f"output={out}"], out)
    window = [r for r in recs if r["iteration"] > warmup]
    seconds = sum(r["step_time_s"] for r in window)
    module = [sum(r["time_s"][m] for r in window) / len(window) for m in range(2)]
    return {"batches_s": len(window) / seconds, "iterations": len(window), "module_s": module,
            "wait_s": [0.0]}


def measure_pipeline(spec: Path, out: Path, warmup: int, depth: int) -> dict:
    recs = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m",
                "gleam_core.cli.train", "--spec", str(spec), "--set", f"output={out}",
                "--set", "distributed.stages=2", "--set", f"gleam.queue_depth={depth}"], out)
    window = [r for r in recs if r["iteration"] > warmup]
    stage_s = [sum(r["stage_step_s"][s] for r in window) for s in range(2)]
    wait = [sum(r["stage_wait_s"][s] for r in window) / sum(r["stage_step_s"][s] for r in window) for s in range(2)]
    module = [sum(r["time_s"][m] for r in window) / len(window) for m in range(2)]
    return {"batches_s": len(window) / max(stage_s), "iterations": len(window), "module_s": module, "wait_s": wait}


def machine() -> str:
    return (f"{cpu_model()}, {os.cpu_count()} logical cores visible; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iterations", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--depths", default="1,2", help="queue depths to measure (comma-separated)")
    p.add_argument("--shape", type=int, default=96)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--out", default=str(REPO / "benchmarks" / "DISTRIBUTED.md"))
    args = p.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {"1 process": [], **{f"2 processes, depth {d}": [] for d in depths}}
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = make_spec(args, tmp)
        for rep in range(args.repeats):
            runs["1 process"].append(measure_single(spec, tmp / f"one_{rep}", args.warmup))
            for d in depths:
                runs[f"2 processes, depth {d}"].append(measure_pipeline(spec, tmp / f"two_{d}_{rep}", args.warmup, d))
            print(f"repeat {rep + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]['batches_s']:.3f}"
                                                                  for k, v in runs.items()), flush=True)
    load_after = os.getloadavg()
    best = {k: max(v, key=lambda r: r["batches_s"]) for k, v in runs.items()}
    median = {k: statistics.median(r["batches_s"] for r in v) for k, v in runs.items()}
    base, base_median = best["1 process"]["batches_s"], median["1 process"]
    lines = ["| configuration | batches/s (best) | s/batch | speed-up (best) | batches/s (median) | "
             "speed-up (median) | module compute s/batch (0, 1) | stage wait share (0, 1) | all runs (batches/s) |",
             "|---|---:|---:|---:|---:|---:|---|---|---|"]
    for k, r in best.items():
        waits = ", ".join(f"{w:.0%}" for w in r["wait_s"]) if k != "1 process" else "-"
        lines.append(f"| {k} | {r['batches_s']:.3f} | {1 / r['batches_s']:.3f} | {r['batches_s'] / base:.2f}x | "
                     f"{median[k]:.3f} | {median[k] / base_median:.2f}x | "
                     f"{r['module_s'][0]:.3f}, {r['module_s'][1]:.3f} | {waits} | "
                     + ", ".join(f"{x['batches_s']:.3f}" for x in runs[k]) + " |")
    key = f"2 processes, depth {depths[0]}"
    ratio, ratio_median = best[key]["batches_s"] / base, median[key] / base_median
    table = "\n".join(lines)
    summary = (f"Module-parallel speed-up with 2 processes (queue depth {depths[0]}): {ratio:.2f}x best vs best, "
               f"{ratio_median:.2f}x median vs median (goal >= 1.6x)")
    config = (f"PGD, 2 unrolls = 2 GLEAM modules (ResNet F={args.features}, 2 blocks), synthetic knee2d "
              f"{args.shape}x{args.shape}, {args.coils} coils, batch {args.batch_size}, Adam; "
              f"{args.iterations} iterations, first {args.warmup} not counted; {args.repeats} runs each")
    print(f"\n{config}\n\n{table}\n\n{summary}")
    text = f"""# Distributed GLEAM: module-parallel throughput on the CPU

Produced by `python benchmarks/distributed.py` ({time.strftime('%Y-%m-%d %H:%M', time.localtime(t0))},
{time.time() - t0:.0f} s). Machine: {machine()}. Load average (1, 5, 15 min) before:
{', '.join(f'{x:.2f}' for x in load_before)}; after: {', '.join(f'{x:.2f}' for x in load_after)}.

Configuration: {config}. One thread per process (`OMP_NUM_THREADS=1`, spec `threads: 1`).
1 process: `gleam-train` (single-process gleam strategy, modules one after the other).
2 processes: `torchrun --standalone --nproc-per-node 2 gleam-train ... --set distributed.stages=2`
(gloo, stage 0 = module 0, stage 1 = module 1; each stage loads every batch itself).
Batches/s: 1 process, iterations / summed step time (batch loading + step); 2 processes,
iterations / the slower stage's summed wall time per iteration (everything included). Module
compute: forward + update time per batch of each module. Stage wait share: fraction of each
stage's time blocked on hand-offs (stage 1) or credits (stage 0).

{table}

**{summary}.**

The two stages overlap fully only if nothing else needs the two cores; each stage also
generates every batch itself (synthetic data on the fly), work that does not shrink with more
processes, so the ideal ratio here is (load + 2 x module) / (load + module), below 2.
"""
    Path(args.out).write_text(text)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
