"""The U-Net of E2E-VarNet (fastMRI's ``Unet``) and ``NormUnet``, for 2D, 3D and (2+1)D data.

U-Net (Ronneberger et al.; fastMRI variant): ``pools`` down-sampling levels of two
"conv 3x3 (no bias), instance norm, LeakyReLU(0.2)" blocks with average pooling by 2, a
bottleneck block, and up-sampling levels of a transposed conv (kernel 2, stride 2, instance
norm, LeakyReLU) concatenated with the skip connection, then a block; a final 1x1 conv (with
bias). Channels double per level from ``chans``.

Convolutions: "2d" (B, C, H, W), "3d" (B, C, D, H, W) pooled along all three axes, or "2+1d"
for cine (B, C, T, H, W): factorized convs (spatial (1, 3, 3), ReLU, temporal (3, 1, 1), from
:func:`~gleam_core.models.denoisers.conv`), pooled along (H, W) only, so that few frames survive
every level.

``NormUnet`` (the cascades' refinement and the sensitivity network's core): complex images
(B, M, *S) -> 2M real channels, normalized per batch element and per real/imaginary part (mean
and standard deviation over all map sets and pixels, as fastMRI's ``NormUnet.norm``), zero-padded
to a multiple of ``2**pools`` along the pooled axes, U-Net, cropped, un-normalized, back to
complex (B, M_out, *S).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .channels import from_channels, to_channels
from .denoisers import CONVS, conv

_NORMS = {"2d": nn.InstanceNorm2d, "3d": nn.InstanceNorm3d, "2+1d": nn.InstanceNorm3d}
_SPATIAL_NDIM = {"2d": 2, "3d": 3, "2+1d": 3}


def _pool_kernel(kind: str) -> tuple[int, ...]:
    return {"2d": (2, 2), "3d": (2, 2, 2), "2+1d": (1, 2, 2)}[kind]


class ConvBlock(nn.Sequential):
    """Two "conv 3x3 (no bias), instance norm, LeakyReLU(0.2)" layers."""

    def __init__(self, kind: str, cin: int, cout: int) -> None:
        norm = _NORMS[kind]
        super().__init__(conv(kind, cin, cout, 3, bias=False), norm(cout), nn.LeakyReLU(0.2),
                         conv(kind, cout, cout, 3, bias=False), norm(cout), nn.LeakyReLU(0.2))


class UpBlock(nn.Sequential):
    """Transposed conv (kernel = stride = the pooling factor, no bias), instance norm, LeakyReLU."""

    def __init__(self, kind: str, cin: int, cout: int) -> None:
        k = _pool_kernel(kind)
        tconv = nn.ConvTranspose2d if kind == "2d" else nn.ConvTranspose3d
        super().__init__(tconv(cin, cout, k, stride=k, bias=False), _NORMS[kind](cout), nn.LeakyReLU(0.2))


class Unet(nn.Module):
    """Real (B, in_chans, *S) -> (B, out_chans, *S); every pooled extent must be divisible by
    ``2**pools`` (``NormUnet`` pads to that)."""

    def __init__(self, kind: str, in_chans: int, out_chans: int, chans: int = 18, pools: int = 4) -> None:
        super().__init__()
        if kind not in CONVS:
            raise ValueError(f"U-Net conv kind must be one of {CONVS}, got {kind!r}")
        if chans < 1 or pools < 0:
            raise ValueError(f"U-Net needs chans >= 1 and pools >= 0, got chans={chans!r}, pools={pools!r}")
        self.kind, self.pools = kind, pools
        self.down = nn.ModuleList([ConvBlock(kind, in_chans, chans)])
        ch = chans
        for _ in range(pools - 1):
            self.down.append(ConvBlock(kind, ch, 2 * ch))
            ch *= 2
        self.bottleneck = ConvBlock(kind, ch, 2 * ch) if pools else nn.Identity()
        self.up_t = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for _ in range(pools):
            self.up_t.append(UpBlock(kind, 2 * ch, ch))
            self.up_conv.append(ConvBlock(kind, 2 * ch, ch))
            ch //= 2
        last = nn.Conv2d if kind == "2d" else nn.Conv3d
        self.out = last(chans if pools else chans, out_chans, 1)

    def forward(self, x: Tensor) -> Tensor:
        pool = _pool_kernel(self.kind)
        skips = []
        for level, block in enumerate(self.down):
            x = block(x)
            if level < self.pools:
                skips.append(x)
                x = F.avg_pool2d(x, pool) if self.kind == "2d" else F.avg_pool3d(x, pool)
        x = self.bottleneck(x)
        for up, block in zip(self.up_t, self.up_conv):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        return self.out(x)


class NormUnet(nn.Module):
    """``x -> unnorm(Unet(norm(x)))`` on complex images (B, M_in, *S) -> (B, M_out, *S).

    Normalization per batch element and per real/imaginary part makes the U-Net see unit-scale
    inputs whatever the k-space scaling; the output is scaled back (std) and shifted (mean)."""

    def __init__(self, kind: str, sets_in: int = 1, sets_out: int = 1, chans: int = 18, pools: int = 4) -> None:
        super().__init__()
        self.kind, self.pools = kind, pools
        self.unet = Unet(kind, 2 * sets_in, 2 * sets_out, chans, pools)
        # None: the U-Net runs in the parameters' dtype; torch.bfloat16/float16: under autocast
        # (mixed precision, set through UnrolledNet.set_compute_dtype), cast back explicitly.
        self.compute_dtype: torch.dtype | None = None

    def _pad(self, x: Tensor) -> tuple[Tensor, list[int]]:
        factor = [p ** self.pools for p in _pool_kernel(self.kind)]
        spatial = x.shape[2:]
        pads: list[int] = []
        for n, f in zip(reversed(spatial), reversed(factor)):
            extra = (-n) % f
            pads += [extra // 2, extra - extra // 2]
        return (F.pad(x, pads) if any(pads) else x), pads

    @staticmethod
    def _crop(x: Tensor, pads: list[int]) -> Tensor:
        for axis, (lo, hi) in enumerate(zip(pads[0::2], pads[1::2])):
            dim = x.dim() - 1 - axis
            if lo or hi:
                x = x.narrow(dim, lo, x.shape[dim] - lo - hi)
        return x

    def forward(self, x: Tensor) -> Tensor:
        nd = _SPATIAL_NDIM[self.kind]
        if x.dim() != 2 + nd or not x.is_complex():
            raise ValueError(f"NormUnet ({self.kind}) expects complex (B, M, *S) with {nd} spatial axes, "
                             f"got {tuple(x.shape)} {x.dtype}")
        parts = torch.view_as_real(x)  # (B, M, *S, 2)
        dims = tuple(range(1, parts.dim() - 1))
        mean = parts.mean(dim=dims, keepdim=True)
        std = parts.std(dim=dims, keepdim=True).clamp_min(torch.finfo(parts.dtype).eps)
        h = to_channels(torch.view_as_complex(((parts - mean) / std).contiguous()))
        h, pads = self._pad(h)
        if self.compute_dtype is None:
            h = self.unet(h)
        else:
            with torch.autocast(h.device.type, dtype=self.compute_dtype):
                h = self.unet(h.to(self.compute_dtype)).to(parts.dtype)
        h = self._crop(h, pads)
        out = torch.view_as_real(from_channels(h))
        # mean/std are (B, 1, ..., 1, 2): they broadcast over any number of output sets.
        return torch.view_as_complex((out * std + mean).contiguous())
