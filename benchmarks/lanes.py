"""GLEAM's module overlap on CUDA: one lane (sequential modules) against two lanes (two GPUs,
or two streams on one GPU), the same network, batches and queue depth in one run.

Usage:
    python benchmarks/lanes.py [--modules 4] [--unrolls 8] [--size 320] [--coils 15]
                               [--steps 30] [--rounds 3] [--depth 2] [--out FILE]

Each round times ``--steps`` training steps of each configuration (after 3 warm-up steps),
synchronized at the end only, alternating the configurations so that drift in clocks or load
falls on both alike. Reported: median seconds per step over rounds, min-max, and the ratio
sequential / lanes (> 1: the lanes overlap). Meant for CUDA; ``--device cpu`` runs the same
code on two CPU lanes (a smoke run: CPU lanes share one thread pool, so expect no overlap).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch

from gleam_core.models import DenoiserConfig, ModelConfig, Problem, UnrolledNet
from gleam_core.train.losses import get_loss
from gleam_core.train.optim import OptimizerConfig
from gleam_core.train.strategies.gleam import Gleam
from machine import report, sync


def _batch(size: int, coils: int, seed: int, device: str) -> tuple[Problem, torch.Tensor]:
    g = torch.Generator(device=device).manual_seed(seed)
    shape = (1, coils, 1, size, size)
    maps = torch.randn(shape, dtype=torch.complex64, device=device, generator=g)
    maps /= maps.abs().square().sum(1, keepdim=True).sqrt()
    target = torch.randn((1, 1, size, size), dtype=torch.complex64, device=device, generator=g)
    mask = (torch.rand((1, 1, 1, size), device=device, generator=g) < 0.3).float()
    kspace = mask * torch.fft.fftn(maps[:, :, 0] * target, dim=(-2, -1), norm="ortho")
    return Problem.from_data(kspace, maps, mask, 2), target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modules", type=int, default=4)
    p.add_argument("--unrolls", type=int, default=8)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--coils", type=int, default=15)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("lanes.py: no CUDA GPU here (--device cpu runs the smoke version)", file=sys.stderr)
        return 2
    cuda = args.device == "cuda"
    first = "cuda:0" if cuda else "cpu"
    two = ["cuda:0", "cuda:1"] if torch.cuda.device_count() >= 2 else [first, first]

    torch.manual_seed(0)
    net = UnrolledNet(ModelConfig(unrolls=args.unrolls, denoiser=DenoiserConfig(features=args.features)), "2d")
    net = net.to(first)
    loss = get_loss("l1")
    total = args.steps * (args.rounds + 1) + 3
    configs = {
        "sequential (1 lane)": Gleam(copy.deepcopy(net), loss, OptimizerConfig(), total, first,
                                     modules=args.modules),
        f"lanes {two}": Gleam(copy.deepcopy(net), loss, OptimizerConfig(), total, first, modules=args.modules,
                              devices=two, queue_depth=args.depth),
    }
    batches = [_batch(args.size, args.coils, s, first) for s in range(4)]
    times: dict[str, list[float]] = {name: [] for name in configs}
    for strat in configs.values():
        for i in range(3):
            strat.train_step(*batches[i % 4])
        strat.join()
    sync(first)
    for _ in range(args.rounds):
        for name, strat in configs.items():
            sync(first)
            t0 = time.perf_counter()
            for i in range(args.steps):
                strat.train_step(*batches[i % 4])
            strat.join()
            sync(first)
            times[name].append((time.perf_counter() - t0) / args.steps)
    seq, lanes = (statistics.median(v) for v in times.values())
    where = f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}" if cuda else "CPU (smoke run)"
    lines = [f"{where}, torch {torch.__version__}; PGD "
             f"{args.unrolls} unrolls F={args.features} in {args.modules} modules, {args.coils} coils "
             f"{args.size}x{args.size}, queue depth {args.depth}, {args.rounds} rounds of {args.steps} steps", "",
             "| configuration | s/step (median) | min-max |", "|---|---:|---:|"]
    for name, v in times.items():
        lines.append(f"| {name} | {statistics.median(v):.4f} | {min(v):.4f}-{max(v):.4f} |")
    lines += ["", f"sequential / lanes = {seq / lanes:.2f}x"]
    report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
