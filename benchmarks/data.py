"""Data-pipeline timings: mask generation and item loading, so data never bottleneck training.

    python benchmarks/data.py [--repeats 5] [--threads 2]

Prints one table: the median wall time of each case (after one warm-up call) and the rate.
Item loading covers opening the HDF5 file, reading the slice and its maps, drawing the mask,
and building the item (zero-filled image for the scale, target), on full-size shapes: a
fastMRI knee slice (15 coils, 640 x 368), a ky-kz slice of a 3D knee (8 coils, 320 x 256), a
cine series (8 coils, 20 frames of 192 x 156). The files hold random data (timing does not
depend on content) and are written to a temporary folder first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gleam_core.data as D  # noqa: E402
from gleam_core.data import masks  # noqa: E402
from gleam_core.ops import backend  # noqa: E402


def _time(fn: Callable[[int], object], repeats: int) -> float:
    fn(0)
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        fn(i + 1)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _random(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def _files(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    paths = {"fastmri": root / "knee" / "file_knee.h5", "vol3d": root / "vol" / "vol.h5", "cine": root / "cine" / "cine.h5"}
    k = _random((2, 15, 640, 368), rng)
    D.write_fastmri(paths["fastmri"], k, maps=_random((2, 15, 1, 640, 368), rng) / 4, recon_size=(320, 320))
    D.write_volume(paths["vol3d"], _random((8, 16, 320, 256), rng), _random((8, 1, 16, 320, 256), rng) / 3)
    D.write_cine(paths["cine"], _random((20, 8, 192, 156), rng), _random((8, 1, 192, 156), rng) / 3)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows: list[tuple[str, str, float]] = []

    def add(name: str, shape: str, fn: Callable[[int], object], repeats: int = args.repeats) -> None:
        rows.append((name, shape, _time(fn, repeats)))

    rand1d = masks.RandomMask1D([0.08], [4])
    add("mask: fastMRI random 1D (4x)", "640 x 368", lambda s: rand1d((640, 368), s))
    add("mask: Poisson disc 8x, compiled", "320 x 256", lambda s: masks.poisson_disc((320, 256), 8, 20, s))
    add("mask: Poisson disc 16x, compiled", "320 x 256", lambda s: masks.poisson_disc((320, 256), 16, 20, s))
    add("mask: Poisson disc 8x, Python mirror", "320 x 256",
        lambda s: masks.poisson_disc((320, 256), 8, 20, s, backend="python"), repeats=2)
    kt = masks.KtMask(8, center_lines=8)
    add("mask: k-t golden-ratio 8x", "20 x 192 x 156", lambda s: kt((20, 192, 156), s))

    with tempfile.TemporaryDirectory() as tmp:
        paths = _files(Path(tmp))
        knee = D.FastMRIDataset(paths["fastmri"], mask={"type": "random", "center_fractions": [0.08],
                                                        "accelerations": [4]}, verbose=False)
        add("item: fastMRI knee slice", "15 x 640 x 368", lambda i: knee[i % len(knee)])
        kykz = D.Volume3DDataset(paths["vol3d"], mode="slices", mask={"type": "poisson", "acceleration": 8,
                                                                       "calib": 20}, verbose=False)
        add("item: 3D knee ky-kz slice", "8 x 320 x 256", lambda i: kykz[i % len(kykz)])
        cine = D.CineDataset(paths["cine"], mask={"type": "kt", "acceleration": 8}, verbose=False)
        add("item: cine series", "8 x 20 x 192 x 156", lambda i: cine[0])
        synth = D.SyntheticDataset("knee2d", 64, mask={"type": "random", "center_fractions": [0.08],
                                                       "accelerations": [4]})
        add("item: synthetic knee2d (on the fly)", "8 x 128 x 112", lambda i: synth[i])

    print(f"gleam_core data benchmark: torch {torch.__version__}, {args.threads} threads, ops backend {backend()}")
    print(f"{'case':40s} {'shape':>20s} {'median ms':>10s} {'per s':>8s}")
    for name, shape, t in rows:
        print(f"{name:40s} {shape:>20s} {t * 1e3:10.2f} {1 / t:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
