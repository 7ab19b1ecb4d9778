"""Image-domain losses between complex reconstructions and targets, both (B, M, *S).

``l1`` (default, GLEAM's local loss): mean |pred - target| (complex modulus); ``l2``: mean
|pred - target|^2; ``ssim``: 1 - SSIM of the magnitudes (per 2D slice, as in fastMRI).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from .. import metrics

LossFn = Callable[[Tensor, Tensor], Tensor]


def complex_l1(pred: Tensor, target: Tensor) -> Tensor:
    """mean |pred - target| over all elements: a real 0-dim tensor."""
    return (pred - target).abs().mean()


def complex_l2(pred: Tensor, target: Tensor) -> Tensor:
    """mean |pred - target|^2 over all elements: a real 0-dim tensor."""
    return (pred - target).abs().square().mean()


def ssim_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - mean SSIM of the magnitudes (``gleam_core.metrics.ssim``: per 2D slice, 7x7 window,
    data range the scan's max |target|): a real 0-dim tensor; slices must be at least 7x7."""
    return 1.0 - metrics.ssim(pred, target).mean()


LOSSES: dict[str, LossFn] = {"l1": complex_l1, "l2": complex_l2, "ssim": ssim_loss}


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]
