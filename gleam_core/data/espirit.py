"""ESPIRiT sensitivity-map calibration in PyTorch, batched over slices, CPU or GPU.

Defaults follow sigpy's ``EspiritCalib`` (calibration width 24, kernel 6, threshold 0.02,
crop 0.95, one map set). The steps, for each slice of centered k-space ``(C, H, W)``:

1. the central ``calib x calib`` calibration region;
2. its Hankel matrix: every ``kernel x kernel`` patch over all coils is one row;
3. SVD; right singular vectors with singular value above ``thresh * max`` span the signal
   subspace, ``P`` is the projection onto it;
4. ``P`` as a k-space convolution: ``W y = y`` for consistent data, with
   ``(W y)_c(q) = sum_c' sum_d h_cc'(d) y_c'(q + d)``, ``h_cc'(d) = 1/k^2 sum_p P[(c,p),(c',p+d)]``;
   in the image domain it is a C x C Hermitian matrix per pixel,
   ``G(r) = sum_d h(d) exp(-2 pi i d.r / N)``, computed exactly by one centered FFT of ``h``
   (no per-kernel images);
5. per-pixel eigenproblem (batched ``eigh``): the maps are the eigenvectors of ``G(r)`` with
   eigenvalue ~1; the top ``sets`` eigenvectors are kept;
6. phase referenced to coil 0, and zero where the eigenvalue is at most ``crop``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..ops import fft2c, ifftnc

# Complex elements of the per-pixel matrices G processed at once (about 256 MB in complex64).
_CHUNK_ELEMENTS = 1 << 25


def _check(kspace: Tensor, calib_width: int, kernel_width: int, thresh: float, crop: float, sets: int) -> None:
    if not isinstance(kspace, Tensor) or kspace.dtype not in (torch.complex64, torch.complex128):
        got = f"{kspace.dtype}" if isinstance(kspace, Tensor) else type(kspace).__name__
        raise ValueError(f"kspace must be a complex64/complex128 tensor, got {got}")
    if kspace.dim() != 4:
        raise ValueError(f"kspace has shape {tuple(kspace.shape)}, expected (B, C, H, W) (a batch of 2D slices)")
    _, coils, h, w = kspace.shape
    if not (isinstance(kernel_width, int) and kernel_width >= 1):
        raise ValueError(f"kernel_width must be a positive int, got {kernel_width!r}")
    if not (isinstance(calib_width, int) and calib_width >= kernel_width):
        raise ValueError(f"calib_width must be an int >= kernel_width ({kernel_width}), got {calib_width!r}")
    if 2 * kernel_width - 1 > min(h, w):
        raise ValueError(f"kernel_width {kernel_width} is too large for a {h}x{w} image (needs 2k-1 <= {min(h, w)})")
    if min(calib_width, h, w) < kernel_width:
        raise ValueError(f"the calibration region ({min(calib_width, h)}x{min(calib_width, w)}) is smaller than "
                         f"the kernel ({kernel_width})")
    if not 0.0 <= thresh < 1.0:
        raise ValueError(f"thresh must be in [0, 1), got {thresh!r}")
    if not 0.0 <= crop < 1.0:
        raise ValueError(f"crop must be in [0, 1), got {crop!r}")
    if not (isinstance(sets, int) and 1 <= sets <= coils):
        raise ValueError(f"sets (map sets M) must be an int in [1, C={coils}], got {sets!r}")


def _kernel_operator(calib: Tensor, kernel_width: int, thresh: float) -> Tensor:
    """h (B, C, C, 2k-1, 2k-1): the signal-subspace projection as a k-space correlation kernel."""
    batch, coils = calib.shape[:2]
    k = kernel_width
    patches = calib.unfold(2, k, 1).unfold(3, k, 1)                 # (B, C, nh, nw, k, k)
    mat = patches.permute(0, 2, 3, 1, 4, 5).reshape(batch, -1, coils * k * k)
    _, s, vh = torch.linalg.svd(mat, full_matrices=False)
    keep = (s > thresh * s[:, :1]).to(vh.dtype).unsqueeze(-1)
    vk = vh * keep                                                  # rows below threshold -> 0
    proj = (vk.transpose(1, 2) @ vk.conj()).reshape(batch, coils, k, k, coils, k, k)
    h = proj.new_zeros(batch, coils, coils, 2 * k - 1, 2 * k - 1)
    for dy in range(-(k - 1), k):
        rows = torch.diagonal(proj, offset=dy, dim1=2, dim2=5).sum(-1)   # (B, C, kx, C, kx')
        for dx in range(-(k - 1), k):
            h[:, :, :, dy + k - 1, dx + k - 1] = torch.diagonal(rows, offset=dx, dim1=2, dim2=4).sum(-1)
    return h / (k * k)


def _eig_maps(h: Tensor, shape: tuple[int, int], sets: int) -> tuple[Tensor, Tensor]:
    """Top ``sets`` eigenpairs of G(r) for one chunk: maps (B, C, M, H, W), values (B, M, H, W)."""
    batch, coils = h.shape[:2]
    H, W = shape
    kk = h.shape[-1] // 2
    grid = h.new_zeros(batch, coils, coils, H, W)
    grid[..., H // 2 - kk:H // 2 + kk + 1, W // 2 - kk:W // 2 + kk + 1] = h
    g = fft2c(grid) * (H * W) ** 0.5                                 # G(r) (B, C, C, H, W)
    vals, vecs = torch.linalg.eigh(g.permute(0, 3, 4, 1, 2))         # ascending
    vals = vals[..., -sets:].flip(-1)                                # (B, H, W, M)
    vecs = vecs[..., -sets:].flip(-1)                                # (B, H, W, C, M)
    return vecs.permute(0, 3, 4, 1, 2), vals.permute(0, 3, 1, 2)


def espirit_maps(kspace: Tensor, *, calib_width: int = 24, kernel_width: int = 6, thresh: float = 0.02,
                 crop: float = 0.95, sets: int = 1, return_eigenvalues: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """ESPIRiT maps of a batch of 2D slices.

    Args:
        kspace: (B, C, H, W) complex64/complex128, centered k-space (fastMRI convention); only
            the central calibration region is used, so undersampled data with a fully sampled
            center works too.
        calib_width, kernel_width, thresh, crop, sets: see the module docstring.
        return_eigenvalues: also return the eigenvalues (B, M, H, W) (real).

    Returns:
        maps (B, C, M, H, W), same dtype and device as ``kspace``; each pixel's coil vector has
        unit norm where its eigenvalue exceeds ``crop`` and is zero elsewhere.
    """
    _check(kspace, calib_width, kernel_width, thresh, crop, sets)
    batch, coils, H, W = kspace.shape
    cy, cx = min(calib_width, H), min(calib_width, W)
    calib = kspace[..., H // 2 - cy // 2:H // 2 - cy // 2 + cy, W // 2 - cx // 2:W // 2 - cx // 2 + cx]
    h = _kernel_operator(calib, kernel_width, thresh)
    chunk = max(1, _CHUNK_ELEMENTS // (coils * coils * H * W))
    maps, vals = [], []
    for start in range(0, batch, chunk):
        m, v = _eig_maps(h[start:start + chunk], (H, W), sets)
        maps.append(m)
        vals.append(v)
    maps_t, vals_t = torch.cat(maps), torch.cat(vals)
    ref = maps_t[:, :1]
    ref_abs = ref.abs()
    phase = torch.where(ref_abs > 0, ref.conj() / ref_abs.clamp_min(torch.finfo(ref_abs.dtype).tiny),
                        torch.ones_like(ref))
    maps_t = maps_t * phase * (vals_t > crop).unsqueeze(1)
    return (maps_t, vals_t) if return_eigenvalues else maps_t


def espirit_maps_volume(kspace: Tensor, **kwargs) -> Tensor:
    """ESPIRiT maps of a 3D Cartesian volume, slice by slice along the readout axis.

    ``kspace`` (C, D, H, W) with D the fully sampled readout and (H, W) the phase encodes:
    an inverse FFT along D gives D ky-kz slices, calibrated as one batch. Returns maps
    (C, M, D, H, W). Keyword arguments as :func:`espirit_maps`.
    """
    if not isinstance(kspace, Tensor) or kspace.dim() != 4:
        shape = tuple(kspace.shape) if isinstance(kspace, Tensor) else type(kspace).__name__
        raise ValueError(f"kspace has shape {shape}, expected (C, D, H, W) with D the readout axis")
    hybrid = ifftnc(kspace, 1).transpose(0, 1)                       # (D, C, H, W)
    return espirit_maps(hybrid, **kwargs).permute(1, 2, 0, 3, 4)
