"""Inputs and checks for the gleam-infer ctest cases (tests/cpp/infer_tests.cmake).

``--make DIR``: per data kind, a tiny trained run, its exports (pt2 and TorchScript), a file
acquired undersampled, and the Python reconstruction of that file (``ReconNet``, eager) in
``<kind>_reference.h5``; plus a malformed input. ``--check OUT --reference REF``: gleam-infer's
output equals the reference within 1e-5 relative (complex64), exit 1 with the error if not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "python")]

import h5py  # noqa: E402
import numpy as np  # noqa: E402

KINDS = ("2d", "3d", "cine")
PT2_KINDS = ("2d", "cine")   # AOTInductor compiles C++ per package: two keep the ctest run short


def make(out: Path) -> None:
    from gleam_core.cli.export import main as export_main
    from gleam_core.recon import ReconNet
    from recon_cases import model_inputs, tiny_run, undersampled_file

    import shutil

    import torch

    torch.set_num_threads(1)
    shutil.rmtree(out, ignore_errors=True)   # a fresh fixture each ctest run (runs refuse to overwrite)
    out.mkdir(parents=True)
    for kind in KINDS:
        run = tiny_run(out, kind)
        path = undersampled_file(out / f"data_{kind}", kind)
        path.replace(out / f"{kind}_undersampled.h5")
        with torch.no_grad():
            image = ReconNet.from_run(run)(*model_inputs(out / f"{kind}_undersampled.h5", kind))
        with h5py.File(out / f"{kind}_reference.h5", "w") as f:
            f.create_dataset("image", data=(image if kind == "2d" else image[0]).numpy())
        for fmt, ext in (("torchscript", "pt"), ("pt2", "pt2")):
            if fmt == "torchscript" or kind in PT2_KINDS:
                assert export_main(["--run", str(run), "--out", str(out / f"{kind}.{ext}"), "--format", fmt]) == 0
    with h5py.File(out / "malformed.h5", "w") as f:   # fastMRI layout, but real-valued k-space
        f.create_dataset("kspace", data=np.ones((2, 3, 16, 16), np.float32))
        f.create_dataset("maps", data=np.ones((2, 3, 1, 16, 16), np.complex64))
        f.create_dataset("mask", data=np.ones(16, np.float32))
    (out / "not_hdf5.h5").write_text("not an HDF5 file\n")


def check(out: Path, reference: Path) -> int:
    """NumPy only (no torch import: this runs once per case)."""
    with h5py.File(out, "r") as f, h5py.File(reference, "r") as r:
        got, ref, magnitude = f["image"][()], r["image"][()], f["reconstruction"][()]
    if got.shape != ref.shape or got.dtype != np.complex64:
        print(f"{out}: image {got.shape} {got.dtype}, expected {ref.shape} complex64")
        return 1
    err = float(np.linalg.norm(got - ref) / np.linalg.norm(ref))
    sets_axis = 0 if magnitude.shape == got.shape[1:] else 1   # (M, *S) or (N, M, H, W)
    rss = np.sqrt((np.abs(got) ** 2).sum(sets_axis))
    mag_err = float(np.linalg.norm(magnitude - rss) / np.linalg.norm(magnitude))
    print(f"{out.name}: relative error {err:.2e} against {reference.name}; magnitude consistency {mag_err:.2e}")
    return 0 if err < 1e-5 and mag_err < 1e-6 else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--make", type=Path)
    p.add_argument("--check", type=Path)
    p.add_argument("--reference", type=Path)
    args = p.parse_args()
    if args.make:
        make(args.make)
        return 0
    return check(args.check, args.reference)


if __name__ == "__main__":
    sys.exit(main())
