"""From fully sampled (or already undersampled) k-space to a dataset item (the data contract).

An item is a dict:

* ``kspace``: complex64 (C, *S), the undersampled centered k-space (mask applied), scaled;
* ``maps``: complex64 (C, M, *S) sensitivity maps (cine: (C, M, 1, H, W), shared by frames);
* ``mask``: float32 (1, *S') in the compact form of :mod:`gleam_core.data.masks`;
* ``target``: complex64 (M, *S), ``sum_c conj(maps_c) * F^H kspace_full_c``, same scale
  (absent for acquisitions that were undersampled on the scanner, e.g. fastMRI test files);
* ``meta``: dict with ``file``, ``slice`` (-1 for whole volumes), ``scale``, ``kind``
  ("2d" | "3d" | "cine"), ``fft_ndim``, ``acceleration`` and format-specific extras.

Scaling: both k-space and target are multiplied by ``scale = 1 / robust_max(|A^H y|)``, the
reciprocal of the 99th percentile of the zero-filled image magnitude, so networks see inputs
of order 1; ``meta["scale"]`` records the factor (divide by it to return to file units).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..ops import zero_filled
from .masks import mask_acceleration

KINDS = {"2d": 2, "3d": 3, "cine": 2}  # item kind -> FFT dimensionality
ROBUST_QUANTILE = 0.99


def robust_max(x: Tensor, q: float = ROBUST_QUANTILE) -> float:
    """The ``q`` quantile of ``|x|`` (exact, any size; torch.quantile has a size limit)."""
    mag = x.detach().abs().flatten()
    k = min(max(int(round(q * mag.numel())), 1), mag.numel())
    return float(mag.kthvalue(k).values)


def make_item(kspace: Tensor, maps: Tensor, mask: Tensor, *, kind: str, meta: dict[str, Any],
              undersampled: bool = False) -> dict[str, Any]:
    """Builds a scaled item from k-space (C, *S), maps (C, M, *S') and a compact mask (1, *S').

    ``undersampled=False``: ``kspace`` is fully sampled; the mask is applied here and the
    target computed from it. ``undersampled=True``: ``kspace`` was acquired undersampled with
    ``mask``; it is kept as is and the item has no target.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    fft_ndim = KINDS[kind]
    kspace = kspace.to(torch.complex64)
    maps = maps.to(torch.complex64)
    mask = mask.to(torch.float32)
    if kspace.dim() != maps.dim() - 1 or mask.dim() != kspace.dim():
        raise ValueError(f"{meta.get('file')}: inconsistent item shapes: kspace {tuple(kspace.shape)}, maps "
                         f"{tuple(maps.shape)}, mask {tuple(mask.shape)} (expected (C, *S), (C, M, *S), (1, *S'))")
    y = kspace if undersampled else kspace * mask
    zf = zero_filled(y.unsqueeze(0), maps.unsqueeze(0), fft_ndim=fft_ndim)[0]
    peak = robust_max(zf)
    scale = 1.0 / peak if peak > 0 else 1.0
    item = {"kspace": y * scale, "maps": maps, "mask": mask,
            "meta": {**meta, "scale": scale, "kind": kind, "fft_ndim": fft_ndim,
                     "acceleration": mask_acceleration(mask)}}
    if not undersampled:
        item["target"] = zero_filled(kspace.unsqueeze(0), maps.unsqueeze(0), fft_ndim=fft_ndim)[0] * scale
    return item
