"""Conversion between native complex images and the real channels a CNN sees."""

from __future__ import annotations

from torch import Tensor
import torch


def to_channels(x: Tensor) -> Tensor:
    """Complex (B, M, *S) -> real (B, 2M, *S), channels ordered (re_0, im_0, re_1, im_1, ...)."""
    b, m, *s = x.shape
    # reshape copies here anyway (the real/imaginary axis is innermost), so contiguous() is free
    # in eager; it keeps AOTInductor (torch 2.13, CPU) from feeding Conv3d a mis-strided buffer
    # when spatial sizes are symbolic (wrong 3D/cine reconstructions from pt2 exports).
    return torch.view_as_real(x).movedim(-1, 2).reshape(b, 2 * m, *s).contiguous()


def from_channels(x: Tensor) -> Tensor:
    """Real (B, 2M, *S) -> complex (B, M, *S), the inverse of :func:`to_channels`."""
    b, c, *s = x.shape
    if c % 2:
        raise ValueError(f"expected an even number of real channels (2 per map set), got shape {tuple(x.shape)}")
    return torch.view_as_complex(x.reshape(b, c // 2, 2, *s).movedim(2, -1).contiguous())
