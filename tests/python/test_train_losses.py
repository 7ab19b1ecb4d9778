"""Losses: complex L1/L2 by their definitions, SSIM loss through the metric, all differentiable."""

from __future__ import annotations

import pytest
import torch

from gleam_core import metrics
from gleam_core.train.losses import get_loss


def test_losses_match_definitions_and_differentiate():
    pred = torch.randn(2, 1, 12, 10, dtype=torch.complex128, requires_grad=True)
    target = torch.randn(2, 1, 12, 10, dtype=torch.complex128)
    d = (pred - target).detach()
    re, im = d.real, d.imag
    torch.testing.assert_close(get_loss("l1")(pred, target), (re ** 2 + im ** 2).sqrt().mean())
    torch.testing.assert_close(get_loss("l2")(pred, target), (re ** 2 + im ** 2).mean())
    ssim = get_loss("ssim")(pred, target)
    torch.testing.assert_close(ssim, 1 - metrics.ssim(pred.detach(), target).mean())
    assert float(get_loss("ssim")(target.clone(), target)) == pytest.approx(0.0, abs=1e-12)
    for name in ("l1", "l2", "ssim"):
        (g,) = torch.autograd.grad(get_loss(name)(pred, target), pred)
        assert torch.isfinite(torch.view_as_real(g)).all() and g.abs().sum() > 0


def test_unknown_loss():
    with pytest.raises(ValueError, match="loss must be one of"):
        get_loss("huber")
