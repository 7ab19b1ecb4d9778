"""Image-domain losses between complex reconstructions and targets, both (B, M, *S).

``l1`` (default, GLEAM's local loss): mean |pred - target| (complex modulus); ``l2``: mean
|pred - target|^2; ``ssim``: 1 - SSIM of the magnitudes (per 2D slice, as in fastMRI).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

LossFn = Callable[[Tensor, Tensor], Tensor]


def complex_l1(pred: Tensor, target: Tensor) -> Tensor:
    """mean |pred - target| over all elements: a real 0-dim tensor."""
    return (pred - target).abs().mean()


def complex_l2(pred: Tensor, target: Tensor) -> Tensor:
    """mean |pred - target|^2 over all elements: a real 0-dim tensor."""
    return (pred - target).abs().square().mean()


LOSSES: dict[str, LossFn] = {"l1": complex_l1, "l2": complex_l2}


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]
