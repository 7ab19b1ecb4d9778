"""``gleam-eval --run DIR | --checkpoint FILE [--data SOURCE] [--masks YAML|FILE] [--out CSV]``:
PSNR (complex and magnitude), SSIM and NRMSE of a trained network per volume and their mean,
next to the zero-filled baseline, as a table and a CSV. A run directory is scored with its
best-validation checkpoint (``best.pt``; the latest where none was kept); the checkpoint read
is named on stderr. PSNR and NRMSE are per volume (fastMRI's convention: the maximum and the
mean squared error over the whole volume), SSIM the mean over its slices; the training log's
validation PSNR is a mean over slices instead, so the two differ. Without ``--data`` it
evaluates the run's validation data (fixed masks). Exit status: 0 done, 2 bad arguments or
data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from .args import add_model_source, positive_int

COLUMNS = [("psnr", "PSNR"), ("psnr_zf", "PSNR zf"), ("psnr_mag", "PSNR mag"), ("psnr_mag_zf", "mag zf"),
           ("ssim", "SSIM"), ("ssim_zf", "SSIM zf"), ("nrmse", "NRMSE"), ("nrmse_zf", "NRMSE zf")]

PSNR_NOTE = ("PSNR: per volume (fastMRI's convention: max|target| and MSE over the whole volume), complex and of "
             "the magnitude; mean: over volumes. Training logs average per slice instead.")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gleam-eval", description="Score a trained GLEAM network against fully "
                                                               "sampled data, next to the zero-filled baseline.")
    add_model_source(p)
    p.add_argument("--data", help="data: a directory, file or glob of HDF5 files, or a YAML mapping such as "
                                  "'{synthetic: {kind: knee2d, n: 8}}' (default: the run's validation data)")
    p.add_argument("--masks", help="mask spec overriding the run's: inline YAML such as '{type: random, "
                                   "accelerations: [8], center_fractions: [0.04]}', or a YAML file holding one")
    p.add_argument("--limit", type=positive_int, help="evaluate only the first N items")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="items per batch (default 1)")
    p.add_argument("--out", help="CSV file (default: <run>/eval.csv)")
    return p


def table(rows: list[dict]) -> str:
    """An aligned text table of per-volume rows (the last one the mean)."""
    name_w = max(len("volume"), *(len(r["volume"]) for r in rows))
    head = f"{'volume':<{name_w}}  {'n':>4}  " + "  ".join(f"{t:>8}" for _, t in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in rows:
        if r["volume"] == "mean":
            lines.append("-" * len(head))
        lines.append(f"{r['volume']:<{name_w}}  {r['items']:>4}  " + "  ".join(f"{r[k]:>8.4f}" for k, _ in COLUMNS))
    return "\n".join(lines)


def evaluate(args: argparse.Namespace) -> tuple[list[dict], Path]:
    from ..devices import parse_device
    from ..recon import describe_checkpoint, load_model, reconstruct_volumes, resolve_checkpoint
    from ..train.datasets import Limited, build_dataset, masks_option
    from ..train.spec import parse_source, parse_spec

    device = parse_device(args.device, "--device")
    ckpt = resolve_checkpoint(args.run or args.checkpoint)
    model, state = load_model(ckpt, device)
    print(f"gleam-eval: reading {describe_checkpoint(ckpt, state)}", file=sys.stderr)
    spec = parse_spec(state["spec"])
    source = parse_source(args.data, "--data") if args.data else spec.data.val
    masks = masks_option(args.masks, spec.masks)
    dataset = build_dataset(source, model.kind, masks, spec.seed, train=False, key="--data")
    if args.limit is not None:
        dataset = Limited(dataset, args.limit)
    rows = []
    for vol in reconstruct_volumes(model, dataset, model.kind, device, args.batch_size):
        rows.append({"volume": Path(vol.file.split(":")[-1]).name, "items": len(vol.meta), **vol.metrics()})
    if not rows:
        raise ValueError("--data: no items to evaluate")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k, _ in COLUMNS}
    rows.append({"volume": "mean", "items": sum(r["items"] for r in rows), **mean})
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return rows, Path(args.out) if args.out else run_dir / "eval.csv"


def write_csv(rows: list[dict], path: Path) -> None:
    import csv
    import io

    from ..atomic import atomic_write_text

    buf = io.StringIO()
    writer = csv.DictWriter(buf, ["volume", "items", *(k for k, _ in COLUMNS)])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        with torch.no_grad():
            rows, out = evaluate(args)
        write_csv(rows, out)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"gleam-eval: {exc}", file=sys.stderr)
        return 2
    print(table(rows))
    print(PSNR_NOTE)
    print(f"CSV: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
