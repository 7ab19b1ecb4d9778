"""The 3D Cartesian volume format (``gleam_format = "vol3d"``): reader and writer.

Layout: ``kspace`` (C, D, H, W) complex64, centered, D the fully sampled readout (kx) and
(H, W) the phase encodes (ky, kz); ``maps`` (C, M, D, H, W); ``target`` (M, D, H, W), the
coil-combined reference (readers recompute it from kspace and maps); optional
``kspace_hybrid`` (D, C, H, W), the inverse FFT of kspace along the readout, stored so that a
ky-kz slice is one contiguous read; optional ``mask`` (H, W) when the volume was acquired
undersampled. Root attrs: ``gleam_format``, ``version`` and free-form ones (``acquisition``...).

Items (:mod:`gleam_core.data.transforms`):

* ``mode="volume"``: one item per file, kind "3d", S = (D, H, W), FFT over 3 axes,
  mask (1, 1, H, W) (e.g. a 2D Poisson disc);
* ``mode="slices"``: one item per readout position, kind "2d", S = (H, W) a ky-kz slice of
  the hybrid data, maps (C, M, H, W), mask (1, H, W). With fixed masks every slice of a volume
  gets the same mask (one acquisition), seeded from the file name.
* ``mode="slabs"`` (``slab=T``): 3D patches for 3D models on volumes too large to train on
  whole: one item per run of T readout positions (D // T per file, the rest dropped), kind
  "3d", S = (T, H, W). The readout is fully sampled, so a slab of the hybrid data transformed
  back along the readout is an exact 3D sub-problem with the volume's (ky, kz) mask; maps are
  the slab's. Fixed masks: one per file, as for slices.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_h5
from ..ops import fftnc, ifftnc, zero_filled
from .base import FileEntry, H5Dataset
from .formats import (FORMAT_ATTR, FORMAT_VERSION, VOL3D, DataFormatError, dataset, expect_shape, open_h5, probe_end,
                      require_format, str_attr, write_complex)
from .masks import MaskFunc
from .splits import Source
from .transforms import make_item


class Volume3DDataset(H5Dataset):
    """3D volumes (``mode="volume"``), their ky-kz slices (``mode="slices"``) or readout slabs
    of ``slab`` positions (``mode="slabs"``); see the module docstring. Other arguments as
    :class:`~gleam_core.data.fastmri.FastMRIDataset`."""

    def __init__(self, source: Source, *, mode: str = "volume", slab: int | None = None,
                 mask: Mapping[str, Any] | MaskFunc | None = None, fixed_masks: bool = False, seed: int = 0,
                 on_error: str = "auto", verbose: bool = True) -> None:
        if mode not in ("volume", "slices", "slabs"):
            raise ValueError(f"mode must be 'volume', 'slices' or 'slabs', got {mode!r}")
        if (mode == "slabs") != (slab is not None) or (slab is not None and not (isinstance(slab, int) and slab >= 1)):
            raise ValueError(f"slab (a positive int) goes with mode='slabs' and only with it; got mode={mode!r}, "
                             f"slab={slab!r}")
        self.mode, self.slab = mode, slab
        self.item_name = {"volume": "volumes", "slices": "ky-kz slices", "slabs": f"readout slabs of {slab}"}[mode]
        super().__init__(source, mask=mask, fixed_masks=fixed_masks, seed=seed, on_error=on_error, verbose=verbose)

    def _scan(self, path: Path) -> FileEntry:
        with open_h5(path) as f:
            require_format(f, VOL3D)
            k = dataset(f, "kspace", (4,))
            coils, d, h, w = k.shape
            m = dataset(f, "maps", (5,))
            expect_shape(f, "maps", m.shape, (coils, None, d, h, w), "maps (C, M, D, H, W)")
            hybrid = "kspace_hybrid" in f
            if hybrid:
                expect_shape(f, "kspace_hybrid", dataset(f, "kspace_hybrid", (4,)).shape, (d, coils, h, w),
                             "kspace_hybrid (D, C, H, W)")
            undersampled = "mask" in f
            if undersampled:
                expect_shape(f, "mask", dataset(f, "mask", (2,), complex_=False).shape, (h, w), "mask (H, W)")
            for key in ("kspace", "maps") + (("kspace_hybrid",) if hybrid else ()):
                probe_end(f[key])
            info = {"hybrid": hybrid, "undersampled": undersampled, "acquisition": str_attr(f, "acquisition")}
            sets = m.shape[1]
        if self.mode == "volume":
            return FileEntry(path, 1, (coils, d, h, w), sets, info)
        if self.mode == "slabs":
            if d < self.slab:
                raise DataFormatError(f"{path}: readout length {d} is shorter than slab={self.slab}")
            return FileEntry(path, d // self.slab, (coils, self.slab, h, w), sets, info)
        return FileEntry(path, d, (coils, h, w), sets, info)

    def _load(self, entry: FileEntry, j: int, index: int) -> dict[str, Any]:
        info = entry.info
        meta = {"file": str(entry.path), "acquisition": info["acquisition"]}
        with open_h5(entry.path) as f:
            file_mask = torch.from_numpy(np.asarray(f["mask"][()], dtype=np.float32)) if info["undersampled"] else None
            if self.mode == "volume":
                kspace = torch.from_numpy(np.asarray(f["kspace"][()]))
                maps = torch.from_numpy(np.asarray(f["maps"][()]))
            elif self.mode == "slabs":
                run = slice(j * self.slab, (j + 1) * self.slab)
                if info["hybrid"]:  # (T, C, H, W) rows of the hybrid data -> (C, T, H, W)
                    hybrid = torch.from_numpy(np.asarray(f["kspace_hybrid"][run])).transpose(0, 1)
                else:
                    hybrid = ifftnc(torch.from_numpy(np.asarray(f["kspace"][()])), 1)[:, run]
                kspace = fftnc(hybrid, 1)
                maps = torch.from_numpy(np.asarray(f["maps"][:, :, run]))
            else:
                if info["hybrid"]:
                    kspace = torch.from_numpy(np.asarray(f["kspace_hybrid"][j]))
                else:  # no stored hybrid data: transform the whole volume for one slice
                    kspace = ifftnc(torch.from_numpy(np.asarray(f["kspace"][()])), 1)[:, j]
                maps = torch.from_numpy(np.asarray(f["maps"][:, :, j]))
        spatial = tuple(entry.kspace_shape[1:])
        lead = (1,) * (len(spatial) - 1)
        if file_mask is not None:
            mask = file_mask.reshape(lead + tuple(file_mask.shape))
        else:
            mask = self.mask_for(spatial, index, entry.path.name)
        kind = "2d" if self.mode == "slices" else "3d"
        meta["slice"] = -1 if self.mode == "volume" else j   # slabs: the slab's index
        return make_item(kspace, maps, mask, kind=kind, meta=meta, undersampled=info["undersampled"])


def write_volume(path: str | Path, kspace: np.ndarray | torch.Tensor, maps: np.ndarray | torch.Tensor, *,
                 hybrid: bool = True, mask: np.ndarray | None = None, attrs: Mapping[str, Any] | None = None) -> None:
    """Writes the vol3d format atomically: kspace (C, D, H, W), maps (C, M, D, H, W); the target
    (and with ``hybrid`` the readout-transformed k-space) is computed here."""
    k = torch.as_tensor(kspace).to(torch.complex64)
    m = torch.as_tensor(maps).to(torch.complex64)
    if k.dim() != 4 or m.dim() != 5 or m.shape[0] != k.shape[0] or m.shape[2:] != k.shape[1:]:
        raise ValueError(f"kspace {tuple(k.shape)} and maps {tuple(m.shape)} do not form (C, D, H, W) and "
                         "(C, M, D, H, W)")
    coils, d, h, w = k.shape
    target = zero_filled(k.unsqueeze(0), m.unsqueeze(0), fft_ndim=3)[0]
    with atomic_h5(path) as f:
        f.attrs[FORMAT_ATTR] = VOL3D
        f.attrs["version"] = FORMAT_VERSION
        write_complex(f, "kspace", k.numpy(), chunks=(coils, 1, h, w))
        write_complex(f, "maps", m.numpy(), chunks=(coils, m.shape[1], 1, h, w))
        write_complex(f, "target", target.numpy())
        if hybrid:
            write_complex(f, "kspace_hybrid", ifftnc(k, 1).transpose(0, 1).numpy(), chunks=(1, coils, h, w))
        if mask is not None:
            f.create_dataset("mask", data=np.asarray(mask, dtype=np.float32).reshape(h, w))
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
