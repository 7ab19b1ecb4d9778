"""Lipschitz-bounded convolutions, so a residual denoiser ``x + f(x)`` stays invertible.

A convolution with K taps per output is ``y = [W_1 ... W_K] [S_1 x; ...; S_K x]`` with shifts
``S_k`` of norm <= 1, so its operator norm is at most ``sqrt(K) * sigma_max(W)`` where W is
the weight reshaped to (out, in * K). :class:`LipschitzBound` reparametrizes a weight as
``W * min(1, bound / (sqrt(K) sigma_max(W)))`` (exact sigma from a small eigenproblem,
differentiable), which caps the convolution's Lipschitz constant at ``bound`` and leaves
weights already below it unchanged. Chaining the bounds through a denoiser body with ReLUs
(1-Lipschitz) caps the body's Lipschitz constant; below 1 the invertible strategy's
fixed-point inverse converges (i-ResNet-style).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize


class LipschitzBound(nn.Module):
    """Weight parametrization capping a convolution's operator norm at ``bound``.

    Values computed without grad are cached per weight version (the invertible strategy evaluates
    the denoiser many times per step while the weights do not change).
    """

    def __init__(self, bound: float, taps: int) -> None:
        super().__init__()
        self.bound, self.root_taps = float(bound), math.sqrt(taps)
        self._cache: tuple[int, int, Tensor] | None = None

    def forward(self, w: Tensor) -> Tensor:
        key = (w.data_ptr(), w._version)
        if not torch.is_grad_enabled() and self._cache is not None and self._cache[:2] == key:
            return self._cache[2]
        mat = w.flatten(1)
        gram = mat @ mat.mT if mat.shape[0] <= mat.shape[1] else mat.mT @ mat
        sigma = torch.linalg.eigvalsh(gram)[-1].clamp_min(0).sqrt()
        out = w * (self.bound / torch.clamp(sigma * self.root_taps, min=self.bound))
        if not torch.is_grad_enabled():
            self._cache = (*key, out)
        return out


def bound_conv(module: nn.Module, bound: float) -> None:
    """Caps every Conv2d/Conv3d in ``module`` at ``bound`` (use on single convolutions)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            parametrize.register_parametrization(m, "weight", LipschitzBound(bound, math.prod(m.kernel_size)))


def resnet_conv_bound(lipschitz: float, blocks: int) -> float:
    """The per-convolution bound s with ``s^2 (1 + s^2)^blocks = lipschitz``: conv in, ``blocks``
    residual blocks of two convs (each at most ``1 + s^2``), conv out."""
    lo, hi = 0.0, max(1.0, lipschitz)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if mid * mid * (1 + mid * mid) ** blocks < lipschitz else (lo, mid)
    return lo


def raw_weight(conv: nn.Module) -> Tensor:
    """The trainable weight of a convolution, parametrized or not."""
    if parametrize.is_parametrized(conv, "weight"):
        return conv.parametrizations.weight.original
    return conv.weight
