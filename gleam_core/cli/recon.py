"""``gleam-recon --checkpoint FILE --in DIR --out DIR``: reconstruct every file of a data
directory with a trained network. Writes ``<out>/<file>.h5`` in fastMRI's submission layout
(dataset ``reconstruction``: float32 magnitudes, (slices, h, w) for 2D data cropped to the
file's recon size, (D, H, W) for 3D, (T, H, W) for cine, in the data's units) and
``<out>/figures/<file>.png`` (zero-filled | recon | target | error where a target exists).
Files acquired undersampled (fastMRI test files) use their own mask; fully sampled files are
undersampled with the run's validation masks (or ``--masks``). Exit status: 0 done, 2 bad
arguments or data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .args import positive_int


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gleam-recon", description="Reconstruct HDF5 k-space files with a trained "
                                                                "GLEAM network (fastMRI submission layout).")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run directory (its latest checkpoint)")
    p.add_argument("--in", dest="inp", required=True, help="directory, file or glob of HDF5 k-space files")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--masks", help="YAML mask spec for fully sampled inputs (default: the run's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="items per batch (default 1)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    return p


def run(args: argparse.Namespace) -> list[Path]:
    from ..atomic import atomic_h5
    from ..metrics import center_crop
    from ..devices import parse_device
    from ..recon import load_model, reconstruct_volumes, resolve_checkpoint
    from ..train.datasets import build_dataset, masks_option
    from ..ops import rss
    from ..train.figures import comparison, save_png
    from ..train.spec import parse_source, parse_spec

    device = parse_device(args.device, "--device")
    model, state = load_model(resolve_checkpoint(args.checkpoint), device)
    spec = parse_spec(state["spec"])
    source = parse_source(args.inp, "--in")
    masks = masks_option(args.masks, spec.masks)
    dataset = build_dataset(source, model.kind, masks, spec.seed, train=False, key="--in", need_target=False)
    out = Path(args.out)
    _check_outputs(dataset, out)
    written = []
    for vol in reconstruct_volumes(model, dataset, model.kind, device, args.batch_size):
        name = Path(vol.file.split(":")[-1]).name
        image = rss(vol.recon, dim=1)             # map sets combined: (slices, H, W) for 2D; (1, *S) for 3D and cine
        if model.kind != "2d":
            image = image[0]
        crop = vol.crop()
        if crop is not None:
            image = center_crop(image, crop)
        path = out / name
        with atomic_h5(path) as f:
            f.create_dataset("reconstruction", data=image.float().numpy())
            f.attrs["acquisition"] = str(vol.meta[0].get("acquisition", ""))
            f.attrs["checkpoint"] = str(args.checkpoint)
        written.append(path)
        if not args.no_figures:
            mid = len(vol.meta) // 2
            target = vol.target[mid] if vol.target is not None else None
            save_png(comparison(vol.zero_filled[mid], vol.recon[mid], target), out / "figures" / f"{Path(name).stem}.png")
    if not written:
        raise ValueError(f"--in: no items found in {args.inp!r}")
    return written


def _check_outputs(dataset, out: Path) -> None:
    """Refuses outputs that would replace an input file or each other (inputs of one name in
    different folders), before any work."""
    inputs = [e.path for e in getattr(dataset, "entries", [])]
    resolved = {p.resolve() for p in inputs}
    seen: dict[str, Path] = {}
    for p in inputs:
        if (out / p.name).resolve() in resolved:
            raise ValueError(f"--out: writing {out / p.name} would overwrite the input {p}; choose another directory")
        if p.name in seen:
            raise ValueError(f"--in: {seen[p.name]} and {p} would both be written to {out / p.name}; "
                             "reconstruct them into separate --out directories")
        seen[p.name] = p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        written = run(args)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"gleam-recon: {exc}", file=sys.stderr)
        return 2
    for p in written:
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
