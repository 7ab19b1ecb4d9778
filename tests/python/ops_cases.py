"""Random SENSE problems shared by the op tests (odd and even sizes, 2D/3D/cine, M=1/2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Case:
    name: str
    batch: int
    coils: int
    sets: int
    spatial: tuple[int, ...]
    fft_ndim: int
    mask_shape: tuple[int, ...]  # broadcastable to (B, 1, *S)
    maps_frames_shared: bool = False  # cine: maps (B, C, M, 1, H, W)


CASES = [
    Case("2d_even_1dmask", 2, 5, 1, (8, 6), 2, (1, 1, 1, 6)),
    Case("2d_odd_2dmask_M2", 1, 9, 2, (7, 5), 2, (1, 1, 7, 5)),
    Case("2d_batch_masks", 3, 4, 1, (6, 9), 2, (3, 1, 6, 9)),
    Case("3d_2dmask", 1, 6, 1, (4, 6, 5), 3, (1, 1, 1, 6, 5)),
    Case("3d_odd_full", 2, 3, 2, (3, 5, 7), 3, (2, 1, 3, 5, 7)),
    Case("cine_kt", 2, 5, 1, (3, 6, 4), 2, (2, 1, 3, 1, 4), maps_frames_shared=True),
]


def make(case: Case, dtype: torch.dtype = torch.complex64, device: str = "cpu", seed: int = 0):
    """Returns x (B, M, *S), maps (B, C, M, *S'), y (B, C, *S), binary float mask."""
    g = torch.Generator().manual_seed(seed)
    b, c, m, s = case.batch, case.coils, case.sets, case.spatial
    maps_s = (1, *s[1:]) if case.maps_frames_shared else s
    x = torch.randn(b, m, *s, dtype=dtype, generator=g)
    maps = torch.randn(b, c, m, *maps_s, dtype=dtype, generator=g)
    y = torch.randn(b, c, *s, dtype=dtype, generator=g)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    mask = (torch.rand(*case.mask_shape, generator=g) < 0.6).to(real)
    mask.view(-1)[0] = 1.0
    return x.to(device), maps.to(device), y.to(device), mask.to(device)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().norm() / b.abs().norm())


def tol(dtype: torch.dtype) -> float:
    return 1e-5 if dtype == torch.complex64 else 1e-10
