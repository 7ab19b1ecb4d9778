"""A trained network as one artifact: ``torch.export`` + AOTInductor (``.pt2``) or TorchScript.

Both capture :class:`~gleam_core.recon.net.ReconNet` (normalization, SENSE operator, whole
chain) with its graph calling the ``gleam::`` custom ops, so a caller needs only torch (or
libtorch) and the ops library: in Python ``import gleam_core.ops``, in C++ ``libgleam_ops``.

What is fixed at export and what stays free:

* The data kind, M (map sets), complex64 and the mask's *layout*: which spatial axes it varies
  along (``mask_axes``); its other axes have size 1 (that is what lets the normal op skip the
  FFTs along them), its batch axis too (one mask for the batch). Masks of another layout must
  be exported for (e.g. ``mask_axes="HW"`` for 2D Poisson-disc masks on 2D data).
* pt2: the batch size B, the coils C and every spatial size are symbolic (B >= 1, C >= 1,
  sizes >= 2), checked by the package when called; inputs must be contiguous (the package is
  compiled for the example's strides). Maps have the batch size of the k-space
  (no sharing by B = 1), and cine maps have size 1 along T (shared by all frames).
* TorchScript (``torch.jit.trace``): shapes are read at run time, so the same freedom holds;
  deprecated by PyTorch in favour of ``torch.export``, but still what many sites deploy.

Metadata (a JSON object: layouts, dtypes, ``fft_ndim``, normalization, the ``gleam::`` ops the
graph calls, spec and architecture)
travels inside: pt2 ``aoti_load_package(p).get_metadata()["gleam"]``, TorchScript the extra
file ``gleam.json`` (``torch.jit.load(p, _extra_files={"gleam.json": ""})``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from torch import Tensor

from .net import ReconNet

FORMATS = ("pt2", "torchscript")
METADATA_KEY = "gleam"                     # pt2 metadata key
METADATA_FILE = "gleam.json"               # TorchScript extra file
_AXES = {"2d": "HW", "3d": "DHW", "cine": "THW"}
DEFAULT_MASK_AXES = {"2d": "W", "3d": "HW", "cine": "TW"}  # fastMRI 1D, Poisson-disc ky-kz, cine k-t masks
DEFAULT_SHAPE = {"2d": (2, 4, 16, 16), "3d": (2, 4, 8, 16, 16), "cine": (2, 4, 6, 16, 16)}


def parse_mask_axes(kind: str, mask_axes: str | None) -> str:
    """The spatial axes (letters of ``HW`` / ``DHW`` / ``THW``) the mask varies along, checked."""
    axes = _AXES[kind]
    value = DEFAULT_MASK_AXES[kind] if mask_axes is None else mask_axes.upper()
    if not value or any(a not in axes for a in value) or len(set(value)) != len(value):
        raise ValueError(f"mask_axes must be distinct letters of {axes!r} for {kind} data, got {mask_axes!r}")
    return "".join(a for a in axes if a in value)


def example_inputs(kind: str, shape: tuple[int, ...] | None, map_sets: int, mask_axes: str,
                   seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """Random (never zero) kspace (B, C, *S), maps (B, C, M, *S) (cine: size 1 along T) and a
    binary mask of the given layout, from the k-space ``shape`` (B, C, *S)."""
    shape = tuple(DEFAULT_SHAPE[kind] if shape is None else shape)
    spatial = len(_AXES[kind])
    if len(shape) != 2 + spatial or min(shape) < 1:
        raise ValueError(f"shape must be the k-space shape (B, C, {', '.join(_AXES[kind])}) of positive sizes for "
                         f"{kind} data, got {shape}")
    b, c, *s = shape
    g = torch.Generator().manual_seed(seed)
    kspace = torch.randn(shape, dtype=torch.complex64, generator=g)
    map_s = [1, *s[1:]] if kind == "cine" else s
    maps = torch.randn((b, c, map_sets, *map_s), dtype=torch.complex64, generator=g)
    mask_s = [n if a in mask_axes else 1 for a, n in zip(_AXES[kind], s)]
    mask = (torch.rand((1, 1, *mask_s), generator=g) < 0.5).float()
    mask.view(-1)[0] = 1.0
    return kspace * mask, maps, mask


def _dynamic_shapes(kind: str, mask_axes: str, example: tuple[Tensor, Tensor, Tensor]) -> dict:
    """torch.export Dims: B and C from 1, spatial sizes from 2 (export specializes sizes 0 and 1)."""
    batch, coils = torch.export.Dim("B", min=1), torch.export.Dim("C", min=1)
    dims = {a: torch.export.Dim(a, min=2) for a in _AXES[kind]}
    kspace = {0: batch, 1: coils, **{2 + i: dims[a] for i, a in enumerate(_AXES[kind])}}
    maps = {0: batch, 1: coils, **{3 + i: dims[a] for i, a in enumerate(_AXES[kind]) if not (kind == "cine" and i == 0)}}
    mask = {2 + i: dims[a] for i, a in enumerate(_AXES[kind]) if a in mask_axes}
    for name, t, d in zip(("kspace", "maps", "mask"), example, (kspace, maps, mask)):
        small = [i for i in d if t.shape[i] < 2]
        if small:
            raise ValueError(f"the example {name} {tuple(t.shape)} has size < 2 on axes {small}, which torch.export "
                             "would fix; export with a --shape of sizes >= 2 (B and C may not be 1 either)")
    return {"kspace": kspace, "maps": maps, "mask": mask}


def metadata(recon: ReconNet, fmt: str, mask_axes: str, example: tuple[Tensor, Tensor, Tensor],
             dynamic: bool) -> dict:
    """The artifact's metadata: :meth:`ReconNet.metadata` plus the format, the mask layout and
    the shapes the artifact accepts."""
    axes = _AXES[recon.kind]
    mask_shape = "(1, 1, " + ", ".join(a if a in mask_axes else "1" for a in axes) + ")"
    return {**recon.metadata(), "artifact": fmt, "mask_axes": mask_axes, "mask_shape": mask_shape,
            "example_shapes": {n: list(t.shape) for n, t in zip(("kspace", "maps", "mask"), example)},
            "dynamic": dynamic, "torch": torch.__version__}


def export_reconnet(recon: ReconNet, out: str | Path, fmt: str = "pt2", shape: tuple[int, ...] | None = None,
                    mask_axes: str | None = None, dynamic: bool = True) -> dict:
    """Writes ``recon`` (on the CPU, eval mode) to ``out`` atomically; returns its metadata.

    ``shape`` is the example k-space shape (B, C, *S) (with ``dynamic`` only its layout matters);
    ``dynamic=False`` fixes every size to it (pt2 only; TorchScript traces are shape-generic)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    recon = recon.eval()
    axes = parse_mask_axes(recon.kind, mask_axes)
    example = example_inputs(recon.kind, shape, recon.metadata()["map_sets"] or 1, axes)
    meta = metadata(recon, fmt, axes, example, dynamic or fmt == "torchscript")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Both writers want a file name of their own; build in a private folder next to `out`,
    # then rename over it, so a failed export never leaves a partial artifact.
    tmp_dir = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        tmp = tmp_dir / ("model.pt2" if fmt == "pt2" else "model.pt")
        with torch.no_grad():
            if fmt == "pt2":
                dyn = _dynamic_shapes(recon.kind, axes, example) if dynamic else None
                program = torch.export.export(recon, example, dynamic_shapes=dyn)
                meta["ops"] = sorted({f"gleam::{n.target._opname}" for n in program.graph.nodes
                                      if isinstance(n.target, torch._ops.OpOverload) and n.target.namespace == "gleam"})
                torch._inductor.aoti_compile_and_package(
                    program, package_path=str(tmp),
                    inductor_configs={"aot_inductor.metadata": {METADATA_KEY: json.dumps(meta, default=str)}})
            else:
                with warnings.catch_warnings():  # the tracer's notes on Python-side shape logic
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)
                    traced = torch.jit.trace(recon, example, check_trace=False)
                meta["ops"] = sorted({n.kind() for n in traced.inlined_graph.nodes() if n.kind().startswith("gleam::")})
                torch.jit.save(traced, str(tmp), _extra_files={METADATA_FILE: json.dumps(meta, default=str)})
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return meta
