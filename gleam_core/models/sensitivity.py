"""E2E-VarNet's sensitivity-map estimation from the autocalibration (ACS) region.

As in Sriram et al. (MICCAI 2020) and fastMRI's ``SensitivityModel``: keep only the fully
sampled center of the undersampled k-space, inverse FFT to coil images, refine each coil image
with a ``NormUnet`` (coils folded into the batch), and divide by the root-sum-of-squares over
coils (and map sets), so the maps satisfy ``sum_c,m |S_cm|^2 = 1`` wherever the signal is not zero.

The ACS region is found from the mask, per batch element, without a host synchronization:
along every FFT axis where the mask varies, the run of sampled positions that contains the
center (fastMRI's ``get_pad_and_num_low_freqs`` generalized to 2D masks); axes where the mask
is constant are kept whole; a mask that varies along a non-FFT axis (cine frames) counts a
position as ACS only if every frame samples it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops import ifftnc, rss
from .unet import NormUnet


def _center_run(line: Tensor) -> Tensor:
    """(B, n) bool -> (B, n) bool: the contiguous run of True containing index n // 2."""
    n = line.shape[-1]
    c = n // 2
    right = line[:, c:].to(torch.int64).cumprod(-1).bool()               # c .. n-1
    left = line[:, :c + 1].flip(-1).to(torch.int64).cumprod(-1).bool().flip(-1)  # 0 .. c
    return torch.cat([left[:, :c], right], dim=-1)


def acs_mask(mask: Tensor, spatial_ndim: int, fft_ndim: int) -> Tensor:
    """The ACS indicator (B, 1, *S') (real, mask's dtype) of a compact mask (B, 1, *S')."""
    sampled = mask > 0
    lead = spatial_ndim - fft_ndim  # non-FFT spatial axes (cine frames): ACS must hold in all
    for a in range(lead):
        sampled = sampled.all(dim=2 + a, keepdim=True)
    acs = torch.ones_like(sampled)
    fft_axes = [2 + a for a in range(lead, spatial_ndim)]
    for axis in fft_axes:
        n = sampled.shape[axis]
        if n == 1:
            continue
        line = sampled
        for other in fft_axes:  # the line through the center along `axis`
            if other != axis and line.shape[other] > 1:
                line = line.narrow(other, line.shape[other] // 2, 1)
        line = line.movedim(axis, -1).reshape(sampled.shape[0], n)
        run = _center_run(line)
        shape = [sampled.shape[0]] + [1] * (sampled.dim() - 1)
        shape[axis] = n
        acs = acs & run.reshape(shape)
    return acs.to(mask.dtype)


class SensitivityNet(nn.Module):
    """Maps (B, C, M, *S) complex from undersampled k-space (B, C, *S) and its compact mask.

    Args:
        kind: U-Net convolution, "2d", "3d" or "2+1d".
        fft_ndim: trailing axes the FFT transforms (2 for 2D and cine, 3 for 3D).
        sets: M, the number of map sets to estimate.
        chans, pools: the NormUnet's width and depth (fastMRI: 8 and 4).
    """

    def __init__(self, kind: str, fft_ndim: int, sets: int = 1, chans: int = 8, pools: int = 4) -> None:
        super().__init__()
        self.fft_ndim, self.sets = fft_ndim, sets
        self.norm_unet = NormUnet(kind, 1, sets, chans, pools)

    def forward(self, kspace: Tensor, mask: Tensor) -> Tensor:
        b, c, *s = kspace.shape
        acs = acs_mask(mask, len(s), self.fft_ndim)
        images = ifftnc(kspace * acs, tuple(range(-self.fft_ndim, 0)))          # (B, C, *S)
        maps = self.norm_unet(images.reshape(b * c, 1, *s)).reshape(b, c, self.sets, *s)
        norm = rss(maps.flatten(1, 2), dim=1)                                   # (B, *S)
        return maps / norm.clamp_min(torch.finfo(norm.dtype).tiny).reshape(b, 1, 1, *s)
