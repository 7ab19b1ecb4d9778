"""gleam_core.metrics against scikit-image (the implementation fastMRI's evaluation calls)."""

import numpy as np
import pytest
import torch
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

from gleam_core import metrics


def _pair(shape, complex_=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    dtype = torch.complex64 if complex_ else torch.float32
    target = torch.randn(shape, generator=g, dtype=dtype)
    # smooth structure plus noise, so SSIM is neither ~0 nor ~1
    target = target + 3 * torch.nn.functional.avg_pool2d(target.real.reshape(-1, 1, *shape[-2:]), 5, 1, 2).reshape(
        shape).to(dtype)
    pred = target + 0.3 * torch.randn(shape, generator=g, dtype=dtype)
    if not complex_:
        target, pred = target.abs(), pred.abs()
    return pred, target


def _skimage_ssim(pred, target):
    """fastMRI's evaluation: per slice, data range = the volume max, mean over slices."""
    gt, pr = target.numpy().astype(np.float64), pred.numpy().astype(np.float64)
    return np.mean([structural_similarity(gt[i], pr[i], data_range=gt.max()) for i in range(gt.shape[0])])


def test_ssim_matches_skimage_per_volume():
    pred, target = _pair((3, 4, 33, 29))
    ours = metrics.ssim(pred, target)
    assert ours.shape == (3,) and ours.dtype == torch.float32
    for b in range(3):
        ref = _skimage_ssim(pred[b], target[b])
        assert 0.2 < ref < 0.99
        assert abs(float(ours[b]) - ref) < 1e-5


def test_ssim_complex_uses_magnitudes_and_crop():
    pred, target = _pair((2, 1, 40, 36), complex_=True, seed=1)
    ours = metrics.ssim(pred, target, crop=(24, 20))
    mag_p, mag_t = pred.abs()[..., 8:32, 8:28], target.abs()[..., 8:32, 8:28]
    for b in range(2):
        assert abs(float(ours[b]) - _skimage_ssim(mag_p[b], mag_t[b])) < 1e-5


def test_psnr_nrmse_match_skimage():
    pred, target = _pair((2, 3, 20, 18), seed=2)
    p, n = metrics.psnr(pred, target), metrics.nrmse(pred, target)
    for b in range(2):
        gt, pr = target[b].numpy().astype(np.float64), pred[b].numpy().astype(np.float64)
        assert abs(float(p[b]) - peak_signal_noise_ratio(gt, pr, data_range=gt.max())) < 1e-4
        assert abs(float(n[b]) - normalized_root_mse(gt, pr, normalization="euclidean")) < 1e-6


def test_complex_psnr_and_magnitude_psnr():
    pred, target = _pair((2, 1, 16, 16), complex_=True, seed=3)
    gt, pr = target.numpy().astype(np.complex128), pred.numpy().astype(np.complex128)
    for b in range(2):
        rmse = np.sqrt(np.mean(np.abs(pr[b] - gt[b]) ** 2))
        expected = 20 * np.log10(np.abs(gt[b]).max() / rmse)
        assert abs(float(metrics.psnr(pred, target)[b]) - expected) < 1e-4
        mag = peak_signal_noise_ratio(np.abs(gt[b]), np.abs(pr[b]), data_range=np.abs(gt[b]).max())
        assert abs(float(metrics.psnr(pred, target, magnitude=True)[b]) - mag) < 1e-4
    # the magnitude ignores phase errors, so it can only be better
    assert (metrics.psnr(pred, target, magnitude=True) >= metrics.psnr(pred, target)).all()


def test_identical_and_explicit_range():
    _, target = _pair((2, 1, 12, 12), seed=4)
    assert torch.allclose(metrics.ssim(target, target), torch.ones(2))
    assert torch.isinf(metrics.psnr(target, target)).all()
    assert (metrics.nrmse(target, target) == 0).all()
    pred = target + 0.1
    p1 = metrics.psnr(pred, target, data_range=2.0)
    assert torch.allclose(p1, torch.full((2,), 10 * np.log10(4 / 0.01), dtype=torch.float32), atol=1e-3)


@pytest.mark.parametrize("bad, match", [
    (lambda t: (t, t[..., :-1]), "does not match"),
    (lambda t: (t, t.to(torch.complex64)), "both be real or both complex"),
    (lambda t: (t[0, 0], t[0, 0]), "at least"),
])
def test_bad_input(bad, match):
    _, target = _pair((2, 1, 12, 12))
    with pytest.raises(ValueError, match=match):
        metrics.ssim(*bad(target))


def test_bad_crop_and_window():
    _, target = _pair((1, 1, 12, 12))
    with pytest.raises(ValueError, match="crop"):
        metrics.psnr(target, target, crop=(20, 4))
    with pytest.raises(ValueError, match="win_size"):
        metrics.ssim(target, target, win_size=13)
    with pytest.raises(ValueError, match="data_range"):
        metrics.psnr(target, target, data_range=torch.ones(3))
