"""The data-consistency problem of one batch: the SENSE operator and ``A^H y``.

Every unroll of a network needs the same operator and the same zero-filled image, so they
are built once per batch (per device) and passed down the chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..ops import SenseOp

FFT_NDIM = {"2d": 2, "3d": 3, "cine": 2}


def fft_ndim_of(kind: str) -> int:
    """The number of trailing axes the FFT transforms for a data kind ("2d", "3d", "cine")."""
    if kind not in FFT_NDIM:
        raise ValueError(f"kind must be one of {sorted(FFT_NDIM)}, got {kind!r}")
    return FFT_NDIM[kind]


@dataclass
class Problem:
    """``op`` (A = mask * F * maps) and ``ahy`` = A^H y, complex (B, M, *S)."""

    op: SenseOp
    ahy: Tensor

    @classmethod
    def from_data(cls, kspace: Tensor, maps: Tensor, mask: Tensor, fft_ndim: int) -> "Problem":
        """Builds the problem of undersampled k-space (B, C, *S), maps (B, C, M, *S) and a
        compact mask (B, 1, *S') broadcastable to (B, 1, *S)."""
        op = SenseOp(maps, mask, fft_ndim=fft_ndim)
        return cls(op, op.adjoint(kspace))

    @property
    def device(self) -> torch.device:
        return self.ahy.device

    def constants(self) -> list[Tensor]:
        """The operator's fixed tensors (maps, mask): data of the batch, not activations."""
        return [self.op.maps, self.op.mask]

    def tensors(self) -> list[Tensor]:
        """Every tensor of the problem: maps, mask and ``ahy``."""
        return [*self.constants(), self.ahy]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "Problem":
        """The same problem on another device and/or complex dtype (copies are non-blocking),
        with the operator's settings (``fft_ndim``, ``coil_chunk``, ``decouple``) kept."""
        device = torch.device(device)
        if device == self.device and (dtype is None or dtype == self.ahy.dtype):
            return self
        op = self.op
        maps = op.maps.to(device, dtype, non_blocking=True)
        # Decoupling shows as normal_dims leaving out the axes where the mask is constant; where it
        # leaves none out, building with or without it gives the same operator.
        # SenseOp converts the mask to the real dtype of the maps.
        moved = SenseOp(maps, op.mask.to(device, non_blocking=True), fft_ndim=op.fft_ndim,
                        coil_chunk=op.coil_chunk or None, decouple=op.normal_dims != op.fft_dims)
        return Problem(moved, self.ahy.to(device, dtype, non_blocking=True))
