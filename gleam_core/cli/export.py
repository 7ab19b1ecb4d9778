"""``gleam-export --run DIR | --checkpoint FILE --out FILE [--format pt2|torchscript] [--shape B,C,...]``:
a trained network as one artifact, ``forward(kspace, maps, mask) -> image``, its graph calling
the ``gleam::`` ops: ``pt2`` (torch.export + AOTInductor package; batch, coil and spatial sizes
symbolic) or ``torchscript`` (deprecated by PyTorch, still widely deployed). Load it with only
torch and ``gleam_core.ops`` (Python) or ``libgleam_ops`` (C++, ``gleam-infer``); see
docs/deployment.md. Exit status: 0 done, 2 bad arguments or checkpoint."""

from __future__ import annotations

import argparse
import sys
import time

from .args import add_model_source


def _shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError:
        shape = ()
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 1,8,320,320, got {text!r}")
    return shape


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gleam-export", description="Export a trained GLEAM network for deployment "
                                                                 "(pt2 / TorchScript).")
    add_model_source(p)
    p.add_argument("--out", required=True, help="artifact file (.pt2 for pt2, .pt for torchscript)")
    p.add_argument("--format", choices=("pt2", "torchscript"), default="pt2", help="artifact format (default pt2)")
    p.add_argument("--shape", type=_shape, help="example k-space shape B,C,*S (default: a small one; with pt2's "
                                                "symbolic sizes only the layout matters)")
    p.add_argument("--mask-axes", help="spatial axes the mask varies along: letters of HW (2d), DHW (3d), THW (cine); "
                                       "default W, HW, TW")
    p.add_argument("--static", action="store_true", help="pt2: fix every size to --shape (no symbolic sizes)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        from ..recon import ReconNet
        from ..recon.export import export_reconnet

        start = time.perf_counter()
        recon = ReconNet.from_run(args.run or args.checkpoint)
        meta = export_reconnet(recon, args.out, args.format, args.shape, args.mask_axes, dynamic=not args.static)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"gleam-export: {exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {args.format}, {meta['kind']} data, kspace {meta['inputs']['kspace']['shape']}, "
          f"mask {meta['mask_shape']}, {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
