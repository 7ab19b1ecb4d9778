"""Residual CNN denoisers ``x + f(x)`` on complex images, for 2D, 3D and 2D+time data.

``f`` sees 2 real channels per map set: (B, M, *S) complex -> (B, 2M, *S) real -> f ->
(B, 2M, *S) -> complex. Two bodies: ``resnet`` (conv in, residual blocks "ReLU, conv, ReLU,
conv" plus skip, ReLU, conv out) and ``cnn`` (MoDL: a plain stack of bias-free convs with
ReLUs). Convolutions are Conv2d for (H, W) images and Conv3d for (D, H, W) volumes and
(T, H, W) cine; cine may instead use factorized (2+1)D convs (spatial (1, k, k), ReLU,
temporal (k, 1, 1)). With ``lipschitz`` set, every convolution is norm-bounded so that f's
Lipschitz constant is at most that value (:mod:`.lipschitz`); below 1, ``x + f(x)`` is
invertible by fixed-point iteration.
"""

from __future__ import annotations

import math

import torch

from torch import Tensor, nn

from .channels import from_channels, to_channels
from .inverse import InverseOptions, invert_residual
from .lipschitz import bound_conv, raw_weight, resnet_conv_bound
from .problem import Problem

CONVS = ("2d", "3d", "2+1d")


def conv(kind: str, cin: int, cout: int, kernel_size: int, bias: bool, bound: float | None = None) -> nn.Module:
    """A 'same'-padded convolution: ``kind`` is "2d", "3d" or "2+1d" (factorized 3D); ``bound``
    caps its Lipschitz constant (for 2+1d, sqrt(bound) per factor)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd int (same padding), got {kernel_size!r}")
    p = kernel_size // 2
    if kind == "2d":
        layer: nn.Module = nn.Conv2d(cin, cout, kernel_size, padding=p, bias=bias)
    elif kind == "3d":
        layer = nn.Conv3d(cin, cout, kernel_size, padding=p, bias=bias)
    elif kind == "2+1d":
        layer = nn.Sequential(nn.Conv3d(cin, cout, (1, kernel_size, kernel_size), padding=(0, p, p), bias=bias),
                              nn.ReLU(),
                              nn.Conv3d(cout, cout, (kernel_size, 1, 1), padding=(p, 0, 0), bias=bias))
        bound = None if bound is None else math.sqrt(bound)
    else:
        raise ValueError(f"conv kind must be one of {CONVS}, got {kind!r}")
    if bound is not None:
        bound_conv(layer, bound)
    return layer


class ResBlock(nn.Module):
    """``x + conv(relu(conv(relu(x))))``, F channels in and out."""

    def __init__(self, kind: str, features: int, kernel_size: int, bias: bool, bound: float | None = None) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), conv(kind, features, features, kernel_size, bias, bound),
                                  nn.ReLU(), conv(kind, features, features, kernel_size, bias, bound))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def resnet_body(kind: str, channels: int, features: int, blocks: int, kernel_size: int, bias: bool = True,
                lipschitz: float | None = None) -> nn.Module:
    """conv(channels -> F), ``blocks`` x ResBlock(F), ReLU, conv(F -> channels); ``lipschitz``
    caps the body's Lipschitz constant."""
    b = None if lipschitz is None else resnet_conv_bound(lipschitz, blocks)
    return nn.Sequential(conv(kind, channels, features, kernel_size, bias, b),
                         *[ResBlock(kind, features, kernel_size, bias, b) for _ in range(blocks)],
                         nn.ReLU(), conv(kind, features, channels, kernel_size, bias, b))


def cnn_body(kind: str, channels: int, features: int, layers: int, kernel_size: int, bias: bool = False,
             lipschitz: float | None = None) -> nn.Module:
    """MoDL's denoiser: ``layers`` convs (channels -> F, (layers-2) x F -> F, F -> channels) with
    ReLUs; ``lipschitz`` caps the body's Lipschitz constant."""
    if layers < 2:
        raise ValueError(f"a cnn denoiser needs at least 2 layers, got {layers!r}")
    b = None if lipschitz is None else lipschitz ** (1.0 / layers)
    mods: list[nn.Module] = [conv(kind, channels, features, kernel_size, bias, b), nn.ReLU()]
    for _ in range(layers - 2):
        mods += [conv(kind, features, features, kernel_size, bias, b), nn.ReLU()]
    mods.append(conv(kind, features, channels, kernel_size, bias, b))
    return nn.Sequential(*mods)


def _last_conv(body: nn.Module) -> nn.Module:
    return [m for m in body.modules() if isinstance(m, (nn.Conv2d, nn.Conv3d))][-1]


class ResidualDenoiser(nn.Module):
    """``D(x) = x + f(x)`` on complex images (B, M, *S); f is a real CNN on (B, 2M, *S).

    Args:
        body: the CNN f, real (B, 2M, *S) -> (B, 2M, *S).
        out_scale: multiplies the initial weights (and bias) of f's last conv; small values
            start D near the identity and keep f contractive (what the invertible strategy's
            fixed-point inverse needs).
    """

    def __init__(self, body: nn.Module, out_scale: float = 1.0) -> None:
        super().__init__()
        self.body = body
        # None: the CNN runs in the parameters' dtype; torch.bfloat16/float16: under autocast
        # (mixed precision, set by the trainer through UnrolledNet.set_compute_dtype).
        self.compute_dtype: torch.dtype | None = None
        if out_scale != 1.0:
            last = _last_conv(body)
            raw_weight(last).data.mul_(out_scale)
            if last.bias is not None:
                last.bias.data.mul_(out_scale)

    def residual(self, x: Tensor) -> Tensor:
        """f(x): complex (B, M, *S) -> complex (B, M, *S), same dtype as ``x``.

        With a ``compute_dtype``, the real channels are cast to it, the CNN runs under autocast,
        and its output is cast back to ``x``'s real dtype: both casts explicit, so the data
        consistency around the denoiser never sees the lower precision."""
        h = to_channels(x)
        if self.compute_dtype is None:
            return from_channels(self.body(h))
        with torch.autocast(h.device.type, dtype=self.compute_dtype):
            out = self.body(h.to(self.compute_dtype))
        return from_channels(out.to(h.dtype))

    def forward(self, x: Tensor, problem: Problem | None = None) -> Tensor:
        return x + self.residual(x)

    def inverse(self, y: Tensor, problem: Problem | None, options: InverseOptions) -> Tensor:
        """Solves ``x + f(x) = y`` by the fixed-point iteration ``x <- y - f(x)`` (converges when f is
        contractive)."""
        return invert_residual(self.residual, y, options)
