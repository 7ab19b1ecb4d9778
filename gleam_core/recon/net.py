"""``ReconNet``: a trained network as a plain tensors-in, image-out module.

``ReconNet(kspace, maps, mask) -> image`` takes raw (unscaled) undersampled k-space and does
what the data pipeline and :func:`~gleam_core.recon.volumes.reconstruct_volumes` do around the
network: it scales each batch element so the 99th percentile of its zero-filled magnitude is
1 (the training data's normalization, :func:`gleam_core.data.transforms.robust_max`), runs the
whole network (every strategy saves the whole chain; GLEAM's modules run in order), and
returns the image in the input's units. Nothing but tensors crosses its boundary, so
``torch.export``, AOTInductor and TorchScript capture it together with the ``gleam::`` ops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from ..data.transforms import ROBUST_QUANTILE
from ..models import fft_ndim_of
from ..ops import zero_filled
from .loading import load_model

NORMALIZATION = (f"per batch element, k-space is multiplied by 1 / q, q the {ROBUST_QUANTILE} quantile of "
                 "|zero-filled image| (sum_c conj(maps_c) F^H kspace_c), and the output by q; done inside the model, "
                 "so callers pass k-space in file units")


class TensorReconstructor(Protocol):
    """What :class:`ReconNet` wraps: a network with a data ``kind`` and a tensors-only entry."""

    kind: str

    def reconstruct(self, kspace: Tensor, maps: Tensor, mask: Tensor) -> Tensor: ...


def robust_peak(image: Tensor, q: float = ROBUST_QUANTILE) -> Tensor:
    """Per batch element, the ``q`` quantile of ``|image|`` (B, ...) -> (B,) real, by the rank
    :func:`gleam_core.data.transforms.robust_max` uses (``round(q * n)``, 1-based). The rank is
    computed as a tensor so exported graphs keep the size of the image symbolic."""
    mag = image.abs().flatten(1)
    n = torch.ones_like(mag[0], dtype=torch.float64).sum()        # the element count, as a tensor
    k = torch.round(n * q).clamp(min=1).minimum(n).to(torch.int64) - 1  # Python's round: half to even, like torch
    return mag.sort(dim=1).values.gather(1, k.expand(mag.shape[0], 1)).squeeze(1)


class ReconNet(nn.Module):
    """A trained network as ``forward(kspace, maps, mask) -> image``.

    Args of forward:
        kspace: (B, C, *S) complex64, undersampled (mask already applied), in file units.
        maps: (B, C, M, *S) complex64 sensitivity maps (B may be 1; cine: size 1 along T allowed).
        mask: real or bool, broadcastable to (B, 1, *S) (size 1 on axes where it is constant).
    Returns:
        (B, M, *S) complex64 image in the units of ``kspace``.

    ``S`` is (H, W) for kind "2d", (D, H, W) for "3d" and (T, H, W) for "cine".
    """

    def __init__(self, net: TensorReconstructor, metadata: dict | None = None) -> None:
        super().__init__()
        self.net = net
        self.kind = net.kind
        self.fft_ndim = fft_ndim_of(net.kind)
        self.extra_metadata = dict(metadata or {})

    @classmethod
    def from_run(cls, path: str | Path, device: str | torch.device = "cpu") -> "ReconNet":
        """From a run directory (its best-validation checkpoint, else its latest) or a checkpoint
        file, in eval mode."""
        model, state = load_model(path, device)
        return cls(model, {"spec": state.get("spec"), "iteration": state.get("iteration"),
                           "model_description": model.description()}).eval()

    def forward(self, kspace: Tensor, maps: Tensor, mask: Tensor) -> Tensor:
        spatial = 3 if self.kind in ("3d", "cine") else 2
        for name, t, dims in (("kspace", kspace, 2 + spatial), ("maps", maps, 3 + spatial)):
            if t.dtype != torch.complex64 or t.dim() != dims:
                raise ValueError(f"{name} must be complex64 with {dims} dims for {self.kind!r} data, got dtype "
                                 f"{t.dtype} and shape {tuple(t.shape)}")
        peak = robust_peak(zero_filled(kspace, maps, fft_ndim=self.fft_ndim))
        unit = torch.ones_like(peak)
        peak = torch.where(peak > 0, peak, unit)
        view = (-1,) + (1,) * (kspace.dim() - 1)
        image = self.net.reconstruct(kspace * (unit / peak).view(view), maps, mask)
        return image * peak.view(view)

    def metadata(self) -> dict:
        """What a caller of an exported model needs: input/output layouts, dtypes, ``fft_ndim``,
        the normalization, and the training spec and architecture."""
        s = {"2d": "H, W", "3d": "D, H, W", "cine": "T, H, W"}[self.kind]
        return {"format": "gleam-reconnet/1", "kind": self.kind, "fft_ndim": self.fft_ndim,
                "inputs": {"kspace": {"shape": f"(B, C, {s})", "dtype": "complex64"},
                           "maps": {"shape": f"(B, C, M, {s})", "dtype": "complex64"},
                           "mask": {"shape": f"broadcastable to (B, 1, {s})", "dtype": "float32"}},
                "output": {"image": {"shape": f"(B, M, {s})", "dtype": "complex64"}},
                "map_sets": getattr(self.net, "map_sets", None), "normalization": NORMALIZATION,
                **self.extra_metadata}
