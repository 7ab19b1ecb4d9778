"""``gleam-recon --checkpoint FILE --in DIR --out DIR [--format h5|nifti|dicom|png]``:
reconstruct every file of a data directory with a trained network. Magnitudes, (slices, h, w)
for 2D data cropped to the file's recon size, (D, H, W) for 3D, (T, H, W) for cine (CMRxRecon:
(slices, T, H, W)), in the data's units, written as (:mod:`gleam_core.recon.formats`): ``h5`` (default)
``<out>/<file>.h5`` in fastMRI's submission layout (dataset ``reconstruction``); ``nifti``
``<out>/<stem>.nii.gz``; ``dicom`` a series ``<out>/<stem>/NNNN.dcm`` (16-bit, derived, for
research use only); ``png`` ``<out>/<stem>/NNNN.png``. Voxel spacing comes from the input's
ISMRMRD header (unit spacing and a warning without one). Also writes
``<out>/figures/<file>.png`` (zero-filled | recon | target | error where a target exists).
A run directory is read through its best-validation checkpoint (``best.pt``; the latest where
none was kept); the checkpoint read is named on stderr.
Files acquired undersampled (fastMRI test files) use their own mask; fully sampled files are
undersampled with the run's validation masks (or ``--masks``). Exit status: 0 done, 2 bad
arguments or data."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..recon.formats import FORMATS
from .args import positive_int


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gleam-recon", description="Reconstruct HDF5 k-space files with a trained "
                                                                "GLEAM network (fastMRI submission layout).")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run directory (its best-validation "
                                                       "checkpoint, else its latest)")
    p.add_argument("--in", dest="inp", required=True, help="directory, file or glob of HDF5 k-space files")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--format", default="h5", choices=FORMATS,
                   help="output format: h5 (fastMRI submission layout, default), nifti (.nii.gz), dicom (a series "
                        "per file, research use only), png (8-bit per slice)")
    p.add_argument("--masks", help="mask spec for fully sampled inputs, inline YAML or a YAML file (default: the "
                                   "run's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="items per batch (default 1)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    return p


def run(args: argparse.Namespace) -> list[Path]:
    from ..metrics import center_crop
    from ..devices import parse_device
    from ..recon import describe_checkpoint, load_model, reconstruct_volumes, resolve_checkpoint
    from ..train.datasets import build_dataset, masks_option
    from ..ops import rss
    from ..recon.formats import read_geometry, write_reconstruction
    from ..train.figures import comparison, save_png
    from ..train.spec import parse_source, parse_spec

    device = parse_device(args.device, "--device")
    ckpt = resolve_checkpoint(args.checkpoint)
    model, state = load_model(ckpt, device)
    print(f"gleam-recon: reading {describe_checkpoint(ckpt, state)}", file=sys.stderr)
    spec = parse_spec(state["spec"])
    source = parse_source(args.inp, "--in")
    masks = masks_option(args.masks, spec.masks)
    dataset = build_dataset(source, model.kind, masks, spec.seed, train=False, key="--in", need_target=False)
    out = Path(args.out)
    _check_outputs(dataset, out, args.format)
    written = []
    for vol in reconstruct_volumes(model, dataset, model.kind, device, args.batch_size):
        name = Path(vol.file.split(":")[-1]).name
        image = rss(vol.recon, dim=1)             # map sets combined: (N, *S) for N items of the file
        # as (Z, T, h, w): 2D slices (N, 1, H, W); a 3D volume (D, 1, H, W); cine slices (N, T, H, W)
        image = image.unsqueeze(1) if model.kind == "2d" else image[0].unsqueeze(1) if model.kind == "3d" else image
        crop = vol.crop()
        if crop is not None:
            image = center_crop(image, crop)
        geometry = read_geometry(vol.file, tuple(image.shape[-2:])) if args.format in ("nifti", "dicom") else None
        attrs = {"acquisition": str(vol.meta[0].get("acquisition", "")), "checkpoint": str(ckpt)}
        written.append(write_reconstruction(out, name, args.format, image.float().numpy(), geometry, attrs=attrs))
        if not args.no_figures:
            mid = len(vol.meta) // 2
            target = vol.target[mid] if vol.target is not None else None
            save_png(comparison(vol.zero_filled[mid], vol.recon[mid], target), out / "figures" / f"{Path(name).stem}.png")
    if not written:
        raise ValueError(f"--in: no items found in {args.inp!r}")
    return written


def _check_outputs(dataset, out: Path, fmt: str) -> None:
    """Refuses outputs that would replace an input file or each other (inputs of one name in
    different folders), before any work."""
    from ..recon.formats import output_path

    inputs = [e.path for e in getattr(dataset, "entries", [])]
    resolved = {p.resolve() for p in inputs}
    seen: dict[Path, Path] = {}
    for p in inputs:
        target = output_path(out, p.name, fmt)
        if target.resolve() in resolved:
            raise ValueError(f"--out: writing {target} would overwrite the input {p}; choose another directory")
        if target in seen:
            raise ValueError(f"--in: {seen[target]} and {p} would both be written to {target}; "
                             "reconstruct them into separate --out directories")
        seen[target] = p


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
