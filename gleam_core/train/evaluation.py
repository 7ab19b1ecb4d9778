"""Validation metrics of training batches (single-process and distributed trainers).

Whole-volume reconstruction and per-volume metrics live in :mod:`gleam_core.recon.volumes`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from ..models import Problem
from ..recon.volumes import batch_problem, image_metrics  # noqa: F401  (re-exported for the trainers)


def psnr_convention(kind: str) -> str:
    """How validation PSNRs (:func:`add_batch_metrics`, per item, then averaged) are formed, for
    printing next to them: an item is a slice in 2D. fastMRI's per-volume figure, which
    gleam-eval prints, takes the max and MSE over the whole volume instead, so the two differ."""
    return "complex, mean over slices" if kind == "2d" else "complex, mean over volumes"


def add_batch_metrics(sums: dict[str, float], recon: Tensor, problem: Problem, target: Tensor,
                      loss_fn: Callable[[Tensor, Tensor], Tensor]) -> int:
    """Adds a validation batch's summed loss and :func:`image_metrics` of the reconstruction and
    (suffix ``_zf``) the zero-filled image into ``sums``; returns the batch size (divide by the
    total count for means)."""
    n = target.shape[0]
    values = {"loss": loss_fn(recon, target) * n}
    for suffix, img in (("", recon), ("_zf", problem.ahy)):
        values.update({k + suffix: t.sum() for k, t in image_metrics(img, target).items()})
    for k, t in values.items():
        sums[k] = sums.get(k, 0.0) + float(t)
    return n
