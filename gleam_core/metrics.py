"""Image-quality metrics, batched in torch, fastMRI conventions.

Inputs are ``pred`` and ``target`` of the same shape ``(B, ..., H, W)``: the first axis is
the batch (one scan or volume per element), everything after it is that scan's image (e.g.
``(M, H, W)``, ``(D, H, W)`` or ``(M, T, H, W)``). Real or complex (complex64/complex128);
every function returns one value per batch element, shape ``(B,)``, in the real dtype of the
inputs (computed in float64).

* :func:`psnr`: ``10 log10(range^2 / MSE)`` over the whole scan, ``range`` = max |target| of
  the scan (fastMRI). On complex inputs this is the complex PSNR ``20 log10(max|ref| / RMSE)``
  with the complex difference; pass ``magnitude=True`` for magnitude PSNR.
* :func:`nrmse`: ``||pred - target|| / ||target||`` over the scan.
* :func:`ssim`: per 2D slice (the last two axes), 7x7 uniform window, K1 = 0.01, K2 = 0.03,
  sample covariance, averaged over the window positions that fit entirely in the slice and
  then over the scan's slices; data range = the scan's max |target| (fastMRI's ``ssim``, which
  calls scikit-image's ``structural_similarity`` per slice). Complex inputs use magnitudes.

``crop=(h, w)`` center-crops the last two axes first (fastMRI evaluates on the 320x320
center of knee images); :func:`center_crop` is the same crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def center_crop(x: Tensor, shape: Sequence[int]) -> Tensor:
    """Center crop of the last two axes to ``shape`` (h, w); fastMRI's offsets ``(H - h) // 2``."""
    h, w = (int(s) for s in shape)
    H, W = x.shape[-2], x.shape[-1]
    if not (0 < h <= H and 0 < w <= W):
        raise ValueError(f"crop {tuple(shape)} must be positive and fit the image's last two axes {(H, W)}")
    top, left = (H - h) // 2, (W - w) // 2
    return x[..., top:top + h, left:left + w]


def _prepare(pred: Tensor, target: Tensor, crop: Sequence[int] | None, min_dim: int, magnitude: bool
             ) -> tuple[Tensor, Tensor, torch.dtype]:
    for name, t in (("pred", pred), ("target", target)):
        if not isinstance(t, Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() < min_dim:
            raise ValueError(f"{name} has shape {tuple(t.shape)}; expected at least {min_dim} dims (B, ..., H, W)")
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} does not match target shape {tuple(target.shape)}")
    if pred.is_complex() != target.is_complex():
        raise ValueError(f"pred ({pred.dtype}) and target ({target.dtype}) must both be real or both complex")
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target is on {target.device}")
    out_dtype = torch.float64 if pred.dtype in (torch.float64, torch.complex128) else torch.float32
    if crop is not None:
        pred, target = center_crop(pred, crop), center_crop(target, crop)
    if magnitude:
        pred, target = pred.abs(), target.abs()
    dtype = torch.complex128 if pred.is_complex() else torch.float64
    return pred.to(dtype), target.to(dtype), out_dtype


def _data_range(target: Tensor, data_range: float | Tensor | None) -> Tensor:
    """Per-scan data range (B,): the given value, or max |target| of each scan."""
    batch = target.shape[0]
    if data_range is None:
        return target.abs().flatten(1).amax(1)
    r = torch.as_tensor(data_range, dtype=torch.float64, device=target.device)
    if r.dim() > 1 or (r.dim() == 1 and r.shape[0] != batch):
        raise ValueError(f"data_range must be a float or a tensor of shape ({batch},), got shape {tuple(r.shape)}")
    return r.expand(batch)


def psnr(pred: Tensor, target: Tensor, *, data_range: float | Tensor | None = None,
         crop: Sequence[int] | None = None, magnitude: bool = False) -> Tensor:
    """Peak signal-to-noise ratio in dB per scan, shape (B,) (module docstring)."""
    p, t, out = _prepare(pred, target, crop, 2, magnitude)
    mse = (p - t).abs().pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(_data_range(t, data_range) ** 2 / mse)).to(out)


def nrmse(pred: Tensor, target: Tensor, *, crop: Sequence[int] | None = None, magnitude: bool = False) -> Tensor:
    """Normalized root-mean-square error ``||pred - target|| / ||target||`` per scan, (B,)."""
    p, t, out = _prepare(pred, target, crop, 2, magnitude)
    return ((p - t).flatten(1).norm(dim=1) / t.flatten(1).norm(dim=1)).to(out)


def ssim(pred: Tensor, target: Tensor, *, data_range: float | Tensor | None = None,
         crop: Sequence[int] | None = None, win_size: int = 7, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Structural similarity per scan, (B,): mean over the scan's 2D slices (module docstring)."""
    p, t, out = _prepare(pred, target, crop, 3, pred.is_complex())
    H, W = p.shape[-2:]
    if not (isinstance(win_size, int) and win_size >= 2 and win_size <= min(H, W)):
        raise ValueError(f"win_size must be an int in [2, min(H, W) = {min(H, W)}], got {win_size!r}")
    batch = p.shape[0]
    rng = _data_range(t, data_range)
    x = p.reshape(-1, 1, H, W)
    y = t.reshape(-1, 1, H, W)
    slices = x.shape[0] // batch
    rng = rng.repeat_interleave(slices).reshape(-1, 1, 1, 1)
    c1, c2 = (k1 * rng) ** 2, (k2 * rng) ** 2
    np_ = win_size * win_size
    cov_norm = np_ / (np_ - 1)  # sample covariance, like scikit-image's default

    def mean(z: Tensor) -> Tensor:
        return F.avg_pool2d(z, win_size, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(batch, slices, -1).mean(2).mean(1).to(out)
