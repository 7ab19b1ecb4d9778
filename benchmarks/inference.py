"""Inference benchmark: eager PyTorch against the exported artifacts (pt2 = torch.export +
AOTInductor, TorchScript), in Python and from C++ (gleam-infer), per slice and per volume.

Usage:
    python benchmarks/inference.py [--infer build/infer/gleam-infer] [--ops-lib build/infer/libgleam_ops.so]
                                   [--slices 8] [--coils 8] [--size 128] [--repeat 5] [--threads 1]
                                   [--out benchmarks/INFERENCE.md]

The network is the quickstart's architecture (PGD, 6 unrolls, ResNet F=32 with 2 blocks, one
network of GLEAM's 3 modules), with random weights: time does not depend on their values. The
data: one fastMRI-layout file of ``--slices`` synthetic 2D slices, ``--coils`` coils, ``--size``
squared, 4x random 1D mask. "Per slice": batch 1, one call per slice (median of ``--repeat``
passes over the volume, divided by the slices); "per volume": one call on all slices (batch =
slices). Every path computes the same image (checked to 1e-5 relative before timing). C++ rows
run gleam-infer (built with -DGLEAM_BUILD_INFER=ON) and parse the time it reports, which
excludes model loading and file I/O like the Python rows. Without --infer the C++ rows are
skipped. Also reported: the time AOTInductor takes to compile the package.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gleam_core.atomic import atomic_write_text  # noqa: E402
from gleam_core.data import write_fastmri  # noqa: E402
from gleam_core.data.masks import mask_from_spec  # noqa: E402
from gleam_core.data.synthetic import SynthConfig, write_synthetic  # noqa: E402
from gleam_core.models import DenoiserConfig, ModelConfig, UnrolledNet  # noqa: E402
from gleam_core.recon import ReconNet  # noqa: E402
from gleam_core.recon.export import export_reconnet  # noqa: E402
from machine import cpu_model  # noqa: E402


def timed(fn, repeat: int) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_file(out: Path, slices: int, coils: int, size: int) -> Path:
    import h5py

    src = write_synthetic(out / "src", SynthConfig("knee2d", (size, size), coils=coils, slices=slices), n=1, seed=3,
                          progress=False)[0]
    with h5py.File(src, "r") as f:
        kspace, maps = f["kspace"][()], f["maps"][()]
    mask = mask_from_spec({"type": "random", "center_fractions": [0.08], "accelerations": [4]})(
        (size, size), "bench").reshape(-1).numpy()
    path = out / "volume.h5"
    write_fastmri(path, kspace * mask, maps=maps, mask=mask)
    return path


def cpp_ms_per_item(infer: str, ops_lib: str, model: Path, data: Path, batch: int, repeat: int, threads: int,
                    out: Path) -> float:
    done = subprocess.run([infer, "--model", str(model), "--in", str(data), "--out", str(out), "--ops-lib", ops_lib,
                           "--batch-size", str(batch), "--repeat", str(repeat), "--threads", str(threads)],
                          capture_output=True, text=True, timeout=1200)
    if done.returncode != 0:
        raise RuntimeError(f"gleam-infer failed: {done.stderr.strip()}")
    return float(re.search(r"([0-9.]+) ms per item", done.stdout).group(1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--infer", help="gleam-infer executable (C++ rows are skipped without it)")
    p.add_argument("--ops-lib", help="libgleam_ops.so (default: next to --infer)")
    p.add_argument("--slices", type=int, default=8)
    p.add_argument("--coils", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="also write the table to this Markdown file")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import h5py

    torch.manual_seed(0)
    cfg = ModelConfig(type="pgd", unrolls=6, step=0.5, denoiser=DenoiserConfig(features=32, blocks=2))
    recon = ReconNet(UnrolledNet(cfg, "2d", share_groups=1)).eval()
    work = Path(tempfile.mkdtemp(prefix="gleam_bench_"))
    data = make_file(work, args.slices, args.coils, args.size)
    with h5py.File(data, "r") as f:
        kspace = torch.from_numpy(f["kspace"][()])
        maps = torch.from_numpy(f["maps"][()])
        mask = torch.from_numpy(f["mask"][()]).float().reshape(1, 1, 1, -1)

    t0 = time.perf_counter()
    export_reconnet(recon, work / "model.pt2", "pt2")
    compile_s = time.perf_counter() - t0
    export_reconnet(recon, work / "model.pt", "torchscript")
    runners = {"eager": recon, "pt2": torch._inductor.aoti_load_package(str(work / "model.pt2")),
               "torchscript": torch.jit.load(str(work / "model.pt"))}

    def per_slice(model):
        return lambda: [model(kspace[i:i + 1], maps[i:i + 1], mask) for i in range(args.slices)]

    def per_volume(model):
        return lambda: model(kspace, maps, mask)

    rows = []
    with torch.no_grad():
        reference = recon(kspace, maps, mask)
        for name, model in runners.items():
            image = torch.cat(per_slice(model)(), 0)
            err = float((image - reference).norm() / reference.norm())
            if err > 1e-5:
                raise RuntimeError(f"{name}: relative error {err:.2e} against eager")
            rows.append((f"Python {name}", timed(per_slice(model), args.repeat) / args.slices * 1e3,
                         timed(per_volume(model), args.repeat) / args.slices * 1e3))
    if args.infer:
        ops_lib = args.ops_lib or str(Path(args.infer).parent / "libgleam_ops.so")
        for fmt, ext in (("pt2", "pt2"), ("torchscript", "pt")):
            model = work / f"model.{ext}"
            rows.append((f"C++ gleam-infer {fmt}",
                         *(cpp_ms_per_item(args.infer, ops_lib, model, data, b, args.repeat, args.threads,
                                           work / "out.h5") for b in (1, args.slices))))
    eager_slice, eager_volume = rows[0][1], rows[0][2]
    lines = [f"Machine: {cpu_model()}, {args.threads} thread(s), torch {torch.__version__}; the CPU was shared with "
             "other work while this ran.",
             f"Data: {args.slices} slices of {args.size}x{args.size}, {args.coils} coils, 4x random 1D mask. Network: "
             "PGD, 6 unrolls, ResNet F=32 (2 blocks), random weights.",
             f"AOTInductor compile of the pt2 package: {compile_s:.1f} s.", "",
             "| runtime | ms / slice (batch 1) | vs eager | ms / slice in a volume (batch "
             f"{args.slices}) | vs eager | volume (ms) |", "|---|---|---|---|---|---|"]
    for name, slice_ms, volume_ms in rows:
        lines.append(f"| {name} | {slice_ms:.1f} | {eager_slice / slice_ms:.2f}x | {volume_ms:.1f} | "
                     f"{eager_volume / volume_ms:.2f}x | {volume_ms * args.slices:.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        atomic_write_text(args.out, table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
