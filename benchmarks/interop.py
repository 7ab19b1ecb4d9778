"""Cost of the NumPy/DLPack adapter (gleam_core.interop.arrays.accepts_arrays) on the ops.

Usage:
    python benchmarks/interop.py [--reps N] [--markdown FILE]

Rows (median over interleaved blocks of calls, so drift of a shared machine hits both sides):
  wrapper alone   accepts_arrays(f) against f, f doing nothing, called with 3 tensors and 1 keyword:
                  the whole price torch callers pay per wrapped call
  SenseOp.normal  the wrapped method against the undecorated one (``__wrapped__``) on a tiny
                  problem (C=2, 16x16), where the op itself is cheapest and the wrapper weighs most
  NumPy path      ops.sense_normal on NumPy arrays against torch tensors: conversion in and out
                  (zero-copy) plus argument binding, for the tiny problem and brain2d (C=16, 320x320)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from gleam_core import ops
from gleam_core.atomic import atomic_write_text
from gleam_core.interop import accepts_arrays
from machine import cpu_model


def interleaved(fns: dict, calls: int, blocks: int) -> dict:
    """Median per-call seconds of each function over ``blocks`` blocks of ``calls`` calls, the
    functions' blocks interleaved."""
    for f in fns.values():
        f()
    per = {k: [] for k in fns}
    for _ in range(blocks):
        for k, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                f()
            per[k].append((time.perf_counter() - t0) / calls)
    return {k: statistics.median(v) for k, v in per.items()}


def problem(coils: int, n: int, dtype=torch.complex64):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, n, n, dtype=dtype, generator=g)
    maps = torch.randn(1, coils, 1, n, n, dtype=dtype, generator=g)
    mask = (torch.rand(n, generator=g) < 0.3).float()
    return x, maps, mask


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=15, help="interleaved blocks per row")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: the rows measure Python-side costs, which extra "
                        "threads only blur with their wake-up jitter)")
    p.add_argument("--markdown", help="also write the table as markdown to this file")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    machine = f"{cpu_model()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    rows = []

    def noop(x, maps, mask, *, fft_ndim=2):
        return x

    x, maps, mask = problem(2, 16)
    wrapped = accepts_arrays(noop)
    t = interleaved({"plain": lambda: noop(x, maps, mask, fft_ndim=2),
                     "wrapped": lambda: wrapped(x, maps, mask, fft_ndim=2)}, 20000, a.reps)
    rows.append(("wrapper alone (torch)", t["plain"], t["wrapped"]))

    op = ops.SenseOp(maps, mask)
    raw_normal = ops.SenseOp.normal.__wrapped__
    t = interleaved({"plain": lambda: raw_normal(op, x), "wrapped": lambda: op.normal(x)}, 500, a.reps)
    rows.append(("SenseOp.normal C=2 16x16 (torch)", t["plain"], t["wrapped"]))

    for label, (coils, n), calls in [("tiny C=2 16x16", (2, 16), 300), ("brain2d C=16 320x320", (16, 320), 3)]:
        x, maps, mask = problem(coils, n)
        xn, mapsn, maskn = x.numpy(), maps.numpy(), mask.numpy()
        t = interleaved({"torch": lambda: ops.sense_normal(x, maps, mask),
                         "numpy": lambda: ops.sense_normal(xn, mapsn, maskn)}, calls, a.reps)
        rows.append((f"sense_normal {label}: NumPy vs torch", t["torch"], t["numpy"]))

    head = "| call | without adapter / torch us | with adapter / NumPy us | extra us | ratio |"
    lines = [f"Machine: {machine}; torch {torch.__version__}; ratios from one run.", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for name, base, other in rows:
        lines.append(f"| {name} | {base * 1e6:.2f} | {other * 1e6:.2f} | {(other - base) * 1e6:.2f} | "
                     f"{other / base:.3f} |")
    print("\n".join(lines))
    if a.markdown:
        atomic_write_text(a.markdown, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
