"""``gleam-data``: synthetic data, ESPIRiT map sidecars, ISMRMRD conversion, summaries, splits.

    gleam-data synth   --kind knee2d|brain2d|knee3d|cine --n N --out DIR [--seed S]
    gleam-data maps    --in DIR [--out DIR] [--calib 24 --kernel 6 --thresh 0.02 --crop 0.95 --sets 1]
                       (fastMRI and CMRxRecon files)
    gleam-data convert --in FILE [FILE ...] --out DIR [ESPIRiT options]
    gleam-data summary --in SOURCE [--format auto|fastmri|vol3d|cine|cmrxrecon] [--mode volume|slices|slabs [--slab T]]
    gleam-data inspect FILE
    gleam-data split   --in SOURCE --val 0.2 --out DIR [--seed S]

Errors in the input print one line naming the file and problem and exit with status 1 (maps:
when any file failed); invalid options exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py

from ..atomic import output_folder
from .args import positive_int


def _listed(paths: list, limit: int = 5) -> str:
    """The first ``limit`` names of ``paths`` and how many more."""
    names = ", ".join(Path(p).name for p in paths[:limit])
    return names + (f" and {len(paths) - limit} more" if len(paths) > limit else "")


def _espirit_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("ESPIRiT (defaults as sigpy's EspiritCalib)")
    g.add_argument("--calib", type=int, default=24, help="calibration region width (default 24)")
    g.add_argument("--kernel", type=int, default=6, help="kernel width (default 6)")
    g.add_argument("--thresh", type=float, default=0.02, help="singular-value threshold (default 0.02)")
    g.add_argument("--crop", type=float, default=0.95, help="eigenvalue crop (default 0.95)")
    g.add_argument("--sets", type=int, default=1, help="map sets M, 1 or 2 (default 1)")
    g.add_argument("--device", default="cpu", help="torch device for ESPIRiT (cpu, cuda, cuda:1, ...)")


def _espirit_kwargs(a: argparse.Namespace) -> dict:
    return {"calib_width": a.calib, "kernel_width": a.kernel, "thresh": a.thresh, "crop": a.crop, "sets": a.sets}


def _synth(a: argparse.Namespace) -> int:
    from ..data.synthetic import SynthConfig, synthesize

    cfg = SynthConfig(a.kind, tuple(a.shape) if a.shape else None, a.coils, a.slices, a.noise)
    out = output_folder(a.out, "--out")
    report = synthesize(out, cfg, a.n, a.seed, progress=not a.quiet)
    slices = f", {cfg.slices} slices per file" if cfg.item_kind == "2d" else ""
    r = len(report.replaced)
    replaced = f" ({r} replaced {'a file' if r == 1 else 'files'} made with other parameters)" if r else ""
    print(f"synth {cfg.kind} ({cfg.size}, {cfg.coils} coils{slices}, seed {a.seed}) in {out}: "
          f"{len(report.written)} written{replaced}, {len(report.kept)} kept (already made with these parameters)")
    for path, why in report.replaced[:5]:
        print(f"  replaced {path.name}: it was made with other parameters ({why})")
    if len(report.replaced) > 5:
        print(f"  ... and {len(report.replaced) - 5} more replaced")
    ours = set(report.paths)
    others = sorted(p for p in out.rglob("*.h5") if p not in ours and not p.name.endswith(".maps.h5"))
    if others:
        print(f"  note: {out} also holds {len(others)} other .h5 file(s) not from this run ({_listed(others)}); "
              "datasets reading the folder include them", file=sys.stderr)
    return 0


def _maps(a: argparse.Namespace) -> int:
    from ..data.sidecar import compute_maps

    out = output_folder(a.out, "--out") if a.out else None
    report = compute_maps(a.input, out, overwrite=a.overwrite, device=a.device, batch=a.batch,
                          progress=not a.quiet, **_espirit_kwargs(a))
    print(f"maps: {len(report.computed)} computed, {len(report.kept)} already done, {len(report.failed)} failed")
    for path, why in report.failed:  # the reasons usually start with the path already
        print(f"  failed {why if why.startswith(str(path)) else f'{path}: {why}'}", file=sys.stderr)
    return 1 if report.failed else 0


def _convert(a: argparse.Namespace) -> int:
    from ..data.ismrmrd_convert import convert_ismrmrd

    out_dir = output_folder(a.out, "--out")
    for src in a.input:
        out = out_dir / (Path(src).stem + ".h5")
        convert_ismrmrd(src, out, device=a.device, progress=not a.quiet, **_espirit_kwargs(a))
        print(f"converted {src} -> {out}")
    return 0


def _summary(a: argparse.Namespace) -> int:
    from ..data.open import SYNTHETIC_PREFIX, detect_format, open_dataset

    kwargs = {"mode": a.mode} if a.mode else {}
    if a.slab is not None:
        kwargs["slab"] = a.slab
    if a.mode and not str(a.input).startswith(SYNTHETIC_PREFIX):
        from ..data.formats import VOL3D

        fmt = detect_format(a.input) if a.format == "auto" else a.format
        if fmt != VOL3D:
            raise ValueError(f"--mode applies to vol3d data only; {a.input} holds {fmt} data")
    if a.maps_dir:
        kwargs["maps_dir"] = a.maps_dir
    ds = open_dataset(a.input, format=a.format, on_error="skip", verbose=False, **kwargs)
    print(ds.summary())
    return 0


def _inspect(a: argparse.Namespace) -> int:
    from ..data.formats import CMRXRECON, file_format, open_h5

    with open_h5(a.file) as f:
        layout = file_format(f)
        print(f"{a.file}: layout {layout}")
        if layout == CMRXRECON:
            from ..data.cmrxrecon import kspace_key

            key, undersampled = kspace_key(f)
            t, z, c, ky, kx = f[key].shape
            print(f"  k-space {key!r} ({'undersampled' if undersampled else 'fully sampled'}), MATLAB (kx, ky, coil, "
                  f"slice, time) stored reversed: kx={kx}, ky={ky}, coils={c}, slices={z}, time={t}; items: {z} "
                  f"cines (C, T, H=kx, W=ky) = ({c}, {t}, {kx}, {ky})")
        for key, value in sorted(f.attrs.items()):
            print(f"  attr {key} = {value!r}")

        def show(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                print(f"  {name}: shape {obj.shape}, dtype {obj.dtype}, chunks {obj.chunks}")

        f.visititems(show)
    return 0


def _split(a: argparse.Namespace) -> int:
    from ..data.splits import resolve_files, split_files, write_file_list

    files, _, _ = resolve_files(a.input)
    train, val = split_files(files, a.val, a.seed)
    out = output_folder(a.out, "--out")
    write_file_list(out / "train.txt", train)
    write_file_list(out / "val.txt", val)
    print(f"split {len(files)} files: {len(train)} train ({out / 'train.txt'}), {len(val)} val ({out / 'val.txt'})")
    return 0


def _check_summary(parser: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    if a.slab is not None and a.mode != "slabs":
        parser.error("--slab goes with --mode slabs only")
    if a.mode == "slabs" and a.slab is None:
        parser.error("--mode slabs needs --slab T (readout positions per slab)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gleam-data", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Exit status: 0 on success; 1 for an error in the input (one line naming "
                                            "the file and problem)\nor when maps failed for any file; 2 for invalid "
                                            "options. 'gleam-data COMMAND --help' for details.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write synthetic multi-coil data (resumable)",
                       description="Writes N synthetic files <kind>_s<seed>_<volume>.h5 to --out, with the "
                                   "generation parameters (kind, seed, volume, shape, coils, slices, noise) in the "
                                   "file's synth_* attributes. Rerunning resumes: a file that exists and was made "
                                   "with the same parameters is kept; one made with other parameters is "
                                   "regenerated and replaced (atomically). The summary line counts files written "
                                   "and kept and names the replaced ones.")
    p.add_argument("--kind", required=True, choices=["knee2d", "brain2d", "knee3d", "cine"])
    p.add_argument("--n", type=positive_int, required=True, help="number of files (volumes / cine series), >= 1")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shape", type=int, nargs="+", help="item shape: H W (2D), D H W (knee3d), T H W (cine)")
    p.add_argument("--coils", type=positive_int, default=8)
    p.add_argument("--slices", type=positive_int, default=8, help="slices per 2D volume")
    p.add_argument("--noise", type=float, default=0.02, help="k-space noise std relative to the mean object magnitude")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(run=_synth)

    p = sub.add_parser("maps", help="ESPIRiT map sidecars for fastMRI and CMRxRecon files (resumable)",
                       description="Computes <stem>.maps.h5 ESPIRiT sidecars for the fastMRI and CMRxRecon files "
                                   "of --in (CMRxRecon: from the time-averaged k-space of each slice; in --out "
                                   "named <patient>_<stem>.maps.h5), keeping sidecars already computed with the "
                                   "same parameters. Files that fail "
                                   "are listed on stderr and the exit status is then 1 (the others are still "
                                   "done).")
    p.add_argument("--in", dest="input", required=True, help="directory, file list or file")
    p.add_argument("--out", default=None, help="sidecar directory (default: next to each input)")
    p.add_argument("--batch", type=int, default=4, help="slices per ESPIRiT batch")
    p.add_argument("--overwrite", action="store_true", help="recompute sidecars that exist")
    p.add_argument("--quiet", action="store_true")
    _espirit_args(p)
    p.set_defaults(run=_maps)

    p = sub.add_parser("convert", help="ISMRMRD raw data (mridata.org) to the vol3d format with ESPIRiT maps")
    p.add_argument("--in", dest="input", required=True, nargs="+", help="ISMRMRD .h5 files")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quiet", action="store_true")
    _espirit_args(p)
    p.set_defaults(run=_convert)

    p = sub.add_parser("summary", help="files, items, shapes and coils of a data source")
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--format", default="auto", choices=["auto", "fastmri", "vol3d", "cine", "cmrxrecon"])
    p.add_argument("--mode", choices=["volume", "slices", "slabs"],
                   help="vol3d items: volumes, ky-kz slices, or readout slabs of --slab positions")
    p.add_argument("--slab", type=positive_int, metavar="T", help="readout positions per slab (with --mode slabs)")
    p.add_argument("--maps-dir", help="fastMRI, CMRxRecon: folder of the maps sidecars")
    p.set_defaults(run=_summary, check=lambda a, p=p: _check_summary(p, a))

    p = sub.add_parser("inspect", help="layout, attributes and datasets of one file")
    p.add_argument("file")
    p.set_defaults(run=_inspect)

    p = sub.add_parser("split", help="deterministic train/val file lists")
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--val", type=float, required=True, help="validation fraction in [0, 1]")
    p.add_argument("--out", required=True, help="directory for train.txt and val.txt")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_split)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "check", None):
        args.check(args)
    try:
        return args.run(args)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"gleam-data {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
