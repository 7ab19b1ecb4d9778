"""Argument validation and canonicalization for the typed op wrappers.

Every failure is a ``ValueError`` naming the argument, what it got and what was expected.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

_COMPLEX = (torch.complex64, torch.complex128)


def real_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.complex128 else torch.float32


def describe(t: Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {t.dtype}, device {t.device}"


def check_tensor(name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor (or a NumPy/DLPack array), got {type(t).__name__}")
    return t


def check_complex(name: str, t: Tensor) -> None:
    if t.dtype not in _COMPLEX:
        hint = " (a real (..., 2) tensor can be converted with torch.view_as_complex)" if not t.is_complex() else ""
        raise ValueError(f"{name} must be complex64 or complex128, got {describe(t)}{hint}")


def check_fft_ndim(fft_ndim: int, spatial_ndim: int) -> None:
    if fft_ndim not in (2, 3):
        raise ValueError(f"fft_ndim must be 2 or 3, got {fft_ndim!r}")
    if spatial_ndim not in (2, 3) or fft_ndim > spatial_ndim:
        raise ValueError(f"fft_ndim={fft_ndim} needs at least {fft_ndim} spatial axes; maps have {spatial_ndim} "
                         "(expected maps (B, C, M, *S) with S = (H, W), (D, H, W) or (T, H, W))")


def check_same_kind(name: str, t: Tensor, ref_name: str, ref: Tensor) -> None:
    if t.device != ref.device:
        raise ValueError(f"{name} is on {t.device} but {ref_name} is on {ref.device}; move both to one device")
    if t.dtype != ref.dtype:
        raise ValueError(f"{name} has dtype {t.dtype} but {ref_name} has {ref.dtype}; mixed precision is not "
                         "supported, convert both to complex64 or both to complex128")


def canonical_mask(mask: Tensor, spatial_ndim: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Returns the mask as a contiguous real tensor of shape (Bk, 1, *Sk) (size 1 = broadcast)."""
    if not isinstance(mask, Tensor):
        raise ValueError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.is_complex():
        raise ValueError(f"mask must be real or bool (a sampling pattern or real weights), got {describe(mask)}")
    if mask.device != device:
        raise ValueError(f"mask is on {mask.device} but maps are on {device}")
    full = 2 + spatial_ndim
    if mask.dim() > full:
        raise ValueError(f"mask has {mask.dim()} dims ({describe(mask)}); expected at most {full}, "
                         f"broadcastable to (B, 1, *S) with {spatial_ndim} spatial axes")
    m = mask.reshape((1,) * (full - mask.dim()) + tuple(mask.shape))
    if m.shape[1] != 1:
        raise ValueError(f"mask of shape {tuple(mask.shape)} has size {m.shape[1]} on the coil axis when "
                         f"broadcast to (B, 1, *S); the sampling mask must be the same for all coils")
    if mask.requires_grad:
        return m.to(dtype)  # keep the graph (the reference path differentiates it)
    return m.to(dtype).contiguous()


def check_mask_fits(mask: Tensor, batch: int, spatial: tuple[int, ...], data_name: str) -> None:
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"mask batch size {mask.shape[0]} does not broadcast to {data_name} batch size {batch}")
    for a, (k, n) in enumerate(zip(mask.shape[2:], spatial)):
        if k not in (1, n):
            raise ValueError(f"mask spatial shape {tuple(mask.shape[2:])} does not broadcast to {data_name} spatial "
                             f"shape {spatial} (axis {a}: {k} vs {n})")


def per_batch_param(name: str, value: float | Tensor, batch: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A real scalar or per-batch parameter as a tensor of shape () or (B,)."""
    if not isinstance(value, Tensor):
        if not isinstance(value, numbers.Real):
            raise ValueError(f"{name} must be a float or a real tensor of shape () or ({batch},), "
                             f"got {type(value).__name__}")
        return torch.tensor(float(value), dtype=dtype, device=device)
    if value.is_complex():
        raise ValueError(f"{name} must be real, got {describe(value)}")
    if value.device != device:
        raise ValueError(f"{name} is on {value.device} but the data are on {device}")
    v = value.reshape(()) if value.numel() == 1 and value.dim() <= 1 and batch != 1 else value
    if not (v.dim() == 0 or (v.dim() == 1 and v.shape[0] == batch)):
        raise ValueError(f"{name} has shape {tuple(value.shape)}, expected () or ({batch},)")
    return v.to(dtype).contiguous()
