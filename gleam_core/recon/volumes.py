"""Reconstruction of whole datasets and the image-quality metrics of a volume (gleam-eval,
gleam-recon and the trainer's validation).

Items are scaled so the zero-filled image has a robust max near 1 (``meta["scale"]``); volumes
are reported in the data's original units (divided by the scale). 2D items that are slices of
one file are stacked into that file's volume, so metrics are per volume as in fastMRI.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from .. import metrics, ops
from ..data import collate
from ..models import Problem, fft_ndim_of


def batch_problem(batch: dict, kind: str, device: torch.device) -> tuple[Problem, Tensor | None]:
    """The :class:`Problem` of a collated batch and its target (B, M, *S) (None for items acquired
    undersampled, which have no target), on ``device``."""
    def to(t: Tensor) -> Tensor:
        return t.to(device, non_blocking=True)
    problem = Problem.from_data(to(batch["kspace"]), to(batch["maps"]), to(batch["mask"]), fft_ndim_of(kind))
    return problem, (to(batch["target"]) if "target" in batch else None)


def image_metrics(pred: Tensor, target: Tensor, crop: tuple[int, int] | None = None) -> dict[str, Tensor]:
    """Per scan (B,) of complex (B, M, *S) images: complex PSNR and NRMSE over all map sets, and
    magnitude PSNR and SSIM of the root-sum-of-squares over the M sets (the image gleam-recon
    writes; for M = 1 simply the magnitude)."""
    pred_mag, target_mag = ops.rss(pred, dim=1), ops.rss(target, dim=1)
    return {"psnr": metrics.psnr(pred, target, crop=crop),
            "psnr_mag": metrics.psnr(pred_mag, target_mag, crop=crop),
            "ssim": metrics.ssim(pred_mag, target_mag, crop=crop),
            "nrmse": metrics.nrmse(pred, target, crop=crop)}


@dataclass
class Volume:
    """One file's reconstruction in original units: (N, M, *S) for N items (2D: the slices in
    order; 3D and cine: N = 1), complex on the CPU."""

    file: str
    recon: Tensor
    zero_filled: Tensor
    target: Tensor | None
    meta: list[dict]

    def crop(self) -> tuple[int, int] | None:
        """fastMRI's evaluation crop (``recon_size``), where the data give one that fits."""
        size = self.meta[0].get("recon_size")
        if size is None:
            return None
        h, w = (int(v) for v in size)
        return (h, w) if h <= self.recon.shape[-2] and w <= self.recon.shape[-1] else None

    def metrics(self) -> dict[str, float]:
        """Reconstruction and zero-filled metrics of the whole volume (needs a target)."""
        if self.target is None:
            raise ValueError(f"{self.file}: no fully sampled target (acquired undersampled), cannot score it")
        out = {}
        for suffix, img in (("", self.recon), ("_zf", self.zero_filled)):
            for k, v in image_metrics(img[None], self.target[None], self.crop()).items():
                out[k + suffix] = float(v[0])
        return out


def reconstruct_volumes(reconstruct: Callable[[Problem], Tensor], dataset: Dataset, kind: str, device: torch.device,
                        batch_size: int = 1, num_workers: int = 0) -> Iterator[Volume]:
    """Runs ``reconstruct`` over ``dataset`` in order and yields one :class:`Volume` per file."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers)
    parts: dict[str, list] = {"recon": [], "zf": [], "target": [], "meta": []}
    current = None

    def flush() -> Volume:
        target = torch.stack(parts["target"]) if parts["target"] else None
        vol = Volume(current, torch.stack(parts["recon"]), torch.stack(parts["zf"]), target, parts["meta"])
        for k in parts:
            parts[k] = []
        return vol

    with torch.no_grad():
        for batch in loader:
            problem, target = batch_problem(batch, kind, device)
            recon = reconstruct(problem).cpu()
            zf = problem.ahy.cpu()
            for i, meta in enumerate(batch["meta"]):
                if current is not None and meta["file"] != current:
                    yield flush()
                current = meta["file"]
                inv = 1.0 / meta["scale"]
                parts["recon"].append(recon[i] * inv)
                parts["zf"].append(zf[i] * inv)
                if target is not None:
                    parts["target"].append(target[i].cpu() * inv)
                parts["meta"].append(meta)
    if current is not None:
        yield flush()
