"""Coil utilities: root-sum-of-squares, map-based coil combination, zero-filled images."""

from __future__ import annotations

import torch
from torch import Tensor

from ..interop.arrays import accepts_arrays
from . import _checks
from .fft import ifftnc
from .sense import SenseOp


@accepts_arrays
def rss(x: Tensor, dim: int = 1) -> Tensor:
    """Root-sum-of-squares over ``dim`` (the coil axis): real, ``dim`` removed."""
    x = _checks.check_tensor("x", x)
    return torch.sqrt((x.abs() ** 2 if x.is_complex() else x ** 2).sum(dim))


@accepts_arrays
def coil_combine(coil_images: Tensor, maps: Tensor) -> Tensor:
    """sum_c conj(maps_c) * image_c: coil images (B, C, *S), maps (B, C, M, *S) -> (B, M, *S)."""
    _checks.check_complex("coil_images", coil_images)
    _checks.check_complex("maps", maps)
    _checks.check_same_kind("coil_images", coil_images, "maps", maps)
    if maps.dim() != coil_images.dim() + 1 or maps.shape[1] != coil_images.shape[1]:
        raise ValueError(f"maps {tuple(maps.shape)} do not fit coil images {tuple(coil_images.shape)}; expected "
                         "maps (B, C, M, *S) for coil images (B, C, *S)")
    return (maps.conj() * coil_images.unsqueeze(2)).sum(1)


@accepts_arrays
def zero_filled(y: Tensor, maps: Tensor, mask: Tensor | None = None, *, fft_ndim: int = 2) -> Tensor:
    """Zero-filled SENSE image A^H y: (B, C, *S) -> (B, M, *S). Without a mask, y is used as is."""
    if mask is None:
        mask = torch.ones((1,) * (y.dim()), dtype=torch.bool, device=y.device)
    return SenseOp(maps, mask, fft_ndim=fft_ndim).adjoint(y)


@accepts_arrays
def zero_filled_rss(y: Tensor, *, fft_ndim: int = 2, coil_dim: int = 1) -> Tensor:
    """Magnitude image without maps: rss over coils of the inverse centered FFT of y."""
    _checks.check_complex("y", y)
    return rss(ifftnc(y, tuple(range(-fft_ndim, 0))), dim=coil_dim)
