"""Centered orthonormal FFTs, identical to fastMRI's ``fft2c``/``ifft2c`` for any size.

``fftnc(x, dims) = fftshift(fftn(ifftshift(x, dims), dims, norm="ortho"), dims)``; inputs
are native complex tensors (complex64 or complex128) of any shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..interop.arrays import accepts_arrays


def _dims(x: Tensor, dims: Sequence[int] | int) -> tuple[int, ...]:
    if not torch.is_complex(x):
        raise ValueError(f"expected a complex tensor (complex64/complex128), got dtype {x.dtype}; "
                         "use torch.view_as_complex for (..., 2) real tensors")
    d = (dims,) if isinstance(dims, int) else tuple(dims)
    for a in d:
        if not -x.dim() <= a < x.dim():
            raise ValueError(f"FFT axis {a} is out of range for a tensor of shape {tuple(x.shape)}")
    return d


@accepts_arrays
def fftnc(x: Tensor, dims: Sequence[int] | int) -> Tensor:
    """Centered orthonormal forward FFT over ``dims``."""
    d = _dims(x, dims)
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=d), dim=d, norm="ortho"), dim=d)


@accepts_arrays
def ifftnc(x: Tensor, dims: Sequence[int] | int) -> Tensor:
    """Centered orthonormal inverse FFT over ``dims``."""
    d = _dims(x, dims)
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(x, dim=d), dim=d, norm="ortho"), dim=d)


@accepts_arrays
def fft2c(x: Tensor) -> Tensor:
    """Centered orthonormal 2D FFT over the last two axes (fastMRI ``fft2c`` on complex data)."""
    return fftnc(x, (-2, -1))


@accepts_arrays
def ifft2c(x: Tensor) -> Tensor:
    """Centered orthonormal 2D inverse FFT over the last two axes."""
    return ifftnc(x, (-2, -1))


@accepts_arrays
def fft3c(x: Tensor) -> Tensor:
    """Centered orthonormal 3D FFT over the last three axes."""
    return fftnc(x, (-3, -2, -1))


@accepts_arrays
def ifft3c(x: Tensor) -> Tensor:
    """Centered orthonormal 3D inverse FFT over the last three axes."""
    return ifftnc(x, (-3, -2, -1))
