"""The shapes of one training batch, which is all memory planning needs to know about the data.

:func:`geometry_of` reads them from a spec's training source without loading data: the
arguments of a synthetic source, or the scanned HDF5 metadata of the first file. When the data
are not on this machine (planning for another one), it falls back to the full-scale reference
geometry of the data kind (:data:`FULL_SCALE`) and says so in ``Geometry.source``. The mask's
structure comes from the spec's mask function (size 1 on the axes where it is constant).
"""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ..data.masks import mask_from_spec
from ..train.spec import Spec

# Full-scale geometries of the example specs' data (coils, spatial shape): fastMRI multi-coil
# knee slices; the 3D FSE knee volumes of the GLEAM paper (D the readout); a cine series
# (our choice of a typical short-axis acquisition: 16 coils, 20 frames of 256 x 208).
FULL_SCALE: dict[str, tuple[int, tuple[int, ...]]] = {
    "2d": (15, (640, 368)),
    "3d": (8, (256, 320, 320)),
    "cine": (16, (20, 256, 208)),
}


@dataclass(frozen=True)
class Geometry:
    """One batch: ``kspace (batch, coils, *spatial)``, ``maps (batch, coils, sets, *spatial)``,
    mask ``(batch, 1, *mask_spatial)`` (size 1 on constant axes), complex ``dtype``.
    ``source`` says where the shapes came from."""

    kind: str
    batch: int
    coils: int
    sets: int
    spatial: tuple[int, ...]
    mask_spatial: tuple[int, ...]
    dtype: torch.dtype = torch.complex64
    source: str = ""

    @property
    def voxels(self) -> int:
        return math.prod(self.spatial)

    def scaled(self, factor: float) -> "Geometry":
        """The same batch with every spatial axis (and the mask's varying axes) scaled by
        ``factor`` (at least 8 voxels per axis): for timing runs on a smaller problem."""
        spatial = tuple(max(8, min(n, round(n * factor))) for n in self.spatial)
        mask = tuple(1 if m == 1 else s for m, s in zip(self.mask_spatial, spatial))
        return replace(self, spatial=spatial, mask_spatial=mask, source=f"{self.source}, scaled x{factor:.3g}")

    def describe(self) -> str:
        return (f"{self.kind}: batch {self.batch}, {self.coils} coils, {self.sets} map set(s), "
                f"{'x'.join(map(str, self.spatial))} ({self.source})")


def _source_shape(spec: Spec) -> tuple[int, int, tuple[int, ...], str] | None:
    """(coils, sets, spatial, where) of the spec's training source, or None if its files are absent."""
    src, kind = spec.data.train, spec.data.kind
    if src.synthetic is not None:
        from ..data.synthetic import DEFAULT_SHAPES
        from ..train.datasets import SYNTHETIC_KIND
        args = src.synthetic
        synth_kind = args.get("kind", SYNTHETIC_KIND[kind])
        shape = tuple(args.get("shape") or DEFAULT_SHAPES[synth_kind])
        if args.get("mode") == "slices":
            shape = shape[1:]
        return int(args.get("coils", 8)), 1, shape, "data.train.synthetic"
    p = Path(src.path).expanduser()
    if not p.exists() and not glob.glob(str(p), recursive=True):
        return None
    from ..data import open_dataset
    dataset = open_dataset(src.path, **src.options)
    entry = dataset.entries[0]
    return int(entry.kspace_shape[0]), int(entry.sets), tuple(entry.kspace_shape[1:]), str(entry.path)


def geometry_of(spec: Spec, *, full_scale: bool = False) -> Geometry:
    """The batch geometry of ``spec``'s training data (see the module docstring); with
    ``full_scale`` the kind's :data:`FULL_SCALE` geometry whatever the data."""
    kind = spec.data.kind
    found = None if full_scale else _source_shape(spec)
    if found is None:
        coils, spatial = FULL_SCALE[kind]
        sets, where = 1, f"full-scale {kind} reference geometry" + ("" if full_scale else
                                                                     f" (data.train not found: {spec.data.train.path})")
    else:
        coils, sets, spatial, where = found
    try:
        mask = mask_from_spec(spec.masks)(spatial, 0)
    except ValueError as exc:
        raise ValueError(f"masks: {exc} (for items of spatial shape {spatial})") from exc
    mask_spatial = tuple(mask.shape[1:])
    if len(mask_spatial) != len(spatial):  # a mask over fewer axes: constant along the leading ones
        mask_spatial = (1,) * (len(spatial) - len(mask_spatial)) + mask_spatial
    return Geometry(kind, spec.data.batch_size, coils, sets, tuple(spatial), mask_spatial, source=where)
