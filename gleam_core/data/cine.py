"""The cine (2D + time) format (``gleam_format = "cine"``): reader and writer.

Layout: ``kspace`` (T, C, H, W) complex64, centered, H the readout and W the phase encode;
``maps`` (C, M, H, W) shared by all frames (or (C, M, T, H, W)); ``target`` (T, H, W) for
M = 1, else (M, T, H, W), the coil-combined reference (readers recompute it); optional
``mask`` (T, W) or (T, H, W) when the data were acquired undersampled. One cine per file.

Items (:mod:`gleam_core.data.transforms`): kind "cine", S = (T, H, W), kspace (C, T, H, W),
maps (C, M, 1, H, W) (or (C, M, T, H, W)), a k-t mask (1, T, 1, W) (or (1, T, H, W) with
partial echo), FFT over (H, W) only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_h5
from ..ops import zero_filled
from .base import FileEntry, H5Dataset
from .formats import (CINE, FORMAT_ATTR, FORMAT_VERSION, dataset, expect_shape, open_h5, probe_end,
                      require_format, str_attr, write_complex)
from .transforms import make_item


class CineDataset(H5Dataset):
    """Cine series, one item per file (kind "cine"); arguments as
    :class:`~gleam_core.data.fastmri.FastMRIDataset` (masks: ``{"type": "kt", ...}``)."""

    item_name = "cines"

    def _scan(self, path: Path) -> FileEntry:
        with open_h5(path) as f:
            require_format(f, CINE)
            k = dataset(f, "kspace", (4,))
            frames, coils, h, w = k.shape
            m = dataset(f, "maps", (4, 5))
            per_frame = m.ndim == 5
            expect_shape(f, "maps", m.shape, (coils, None, frames, h, w) if per_frame else (coils, None, h, w),
                         "maps (C, M, H, W) or (C, M, T, H, W)")
            undersampled = "mask" in f
            if undersampled:
                mk = dataset(f, "mask", (2, 3), complex_=False)
                expect_shape(f, "mask", mk.shape, (frames, w) if mk.ndim == 2 else (frames, h, w),
                             "mask (T, W) or (T, H, W)")
            probe_end(k)
            probe_end(m)
            info = {"undersampled": undersampled, "per_frame_maps": per_frame, "acquisition": str_attr(f, "acquisition")}
            sets = m.shape[1]
        return FileEntry(path, 1, (coils, frames, h, w), sets, info)

    def _load(self, entry: FileEntry, j: int, index: int) -> dict[str, Any]:
        info = entry.info
        coils, frames, h, w = entry.kspace_shape
        with open_h5(entry.path) as f:
            kspace = torch.from_numpy(np.asarray(f["kspace"][()])).transpose(0, 1)
            maps = torch.from_numpy(np.asarray(f["maps"][()]))
            file_mask = torch.from_numpy(np.asarray(f["mask"][()], dtype=np.float32)) if info["undersampled"] else None
        if not info["per_frame_maps"]:
            maps = maps.unsqueeze(2)
        if file_mask is not None:
            mask = file_mask.reshape(1, frames, 1, w) if file_mask.dim() == 2 else file_mask.unsqueeze(0)
        else:
            mask = self.mask_for((frames, h, w), index, entry.path.name)
        meta = {"file": str(entry.path), "slice": -1, "acquisition": info["acquisition"]}
        return make_item(kspace, maps, mask, kind="cine", meta=meta, undersampled=info["undersampled"])


def write_cine(path: str | Path, kspace: np.ndarray | torch.Tensor, maps: np.ndarray | torch.Tensor, *,
               mask: np.ndarray | None = None, attrs: Mapping[str, Any] | None = None) -> None:
    """Writes the cine format atomically: kspace (T, C, H, W), maps (C, M, H, W); the target is
    computed here."""
    k = torch.as_tensor(kspace).to(torch.complex64)
    m = torch.as_tensor(maps).to(torch.complex64)
    if k.dim() != 4 or m.dim() != 4 or m.shape[0] != k.shape[1] or m.shape[2:] != k.shape[2:]:
        raise ValueError(f"kspace {tuple(k.shape)} and maps {tuple(m.shape)} do not form (T, C, H, W) and "
                         "(C, M, H, W)")
    target = zero_filled(k.transpose(0, 1).unsqueeze(0), m.unsqueeze(2).unsqueeze(0), fft_ndim=2)[0]
    with atomic_h5(path) as f:
        f.attrs[FORMAT_ATTR] = CINE
        f.attrs["version"] = FORMAT_VERSION
        write_complex(f, "kspace", k.numpy())
        write_complex(f, "maps", m.numpy())
        write_complex(f, "target", (target[0] if m.shape[1] == 1 else target).numpy())
        if mask is not None:
            f.create_dataset("mask", data=np.asarray(mask, dtype=np.float32))
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
