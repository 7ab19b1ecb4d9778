"""ESPIRiT against known coil sensitivities: synthetic objects, true normalized maps."""

import numpy as np
import pytest
import torch

from gleam_core.data import phantoms
from gleam_core.data.espirit import espirit_maps, espirit_maps_volume
from gleam_core.ops import fft2c, fftnc


def _problem(seed, shape=(72, 64), coils=8, noise=1e-3, anatomy="brain"):
    rng = np.random.default_rng(seed)
    c = phantoms.grid_coords(shape, float(rng.uniform(-0.2, 0.2)))
    image = phantoms.ANATOMIES[anatomy](rng, c, 0.5 / max(shape)).to(torch.complex64)
    image = image * torch.exp(1j * phantoms.background_phase(rng, c))
    maps = phantoms.CoilArray.ring(rng, coils, 2, (0.9, 1.0), heights=2)(c)
    g = torch.Generator().manual_seed(seed)
    k = fft2c(maps * image)
    k = k + noise * k.abs().max() * torch.randn(k.shape, generator=g, dtype=k.dtype)
    return k, maps, image


def _agreement(est, truth):
    """|<est, truth>| / (|est| |truth|) per pixel (phase-invariant)."""
    num = (est.conj() * truth).sum(0).abs()
    return num / (est.abs().pow(2).sum(0).sqrt() * truth.abs().pow(2).sum(0).sqrt()).clamp_min(1e-12)


def test_maps_match_truth_inside_object_batched():
    problems = [_problem(s) for s in range(3)]
    k = torch.stack([p[0] for p in problems])
    est = espirit_maps(k)
    assert est.shape == (3, 8, 1, 72, 64) and est.dtype == torch.complex64
    for b, (_, maps, image) in enumerate(problems):
        inside = image.abs() > 0.1 * image.abs().max()
        agree = _agreement(est[b, :, 0], maps)[inside]
        assert agree.min() > 0.95 and agree.mean() > 0.99
        # batched = one slice at a time
        assert torch.allclose(espirit_maps(k[b:b + 1])[0], est[b], atol=1e-4)


def test_normalization_phase_reference_and_crop():
    k, maps, image = _problem(7)
    est, vals = espirit_maps(k[None], return_eigenvalues=True)
    est, vals = est[0, :, 0], vals[0, 0]
    kept = vals > 0.95
    assert torch.allclose(est.abs().pow(2).sum(0)[kept], torch.ones(int(kept.sum())), atol=1e-4)
    assert (est[:, ~kept] == 0).all()
    inside = image.abs() > 0.1 * image.abs().max()
    assert kept[inside].float().mean() > 0.99                # the object is kept
    background = image.abs() < 1e-6
    assert kept[background].float().mean() < 0.5             # much of the empty background is cropped
    ref = est[0][kept]                                        # coil 0 carries the phase reference
    assert (ref.imag.abs() < 1e-5).all() and (ref.real >= 0).all()


def test_two_map_sets():
    k, maps, image = _problem(3)
    one = espirit_maps(k[None])
    two, vals = espirit_maps(k[None], sets=2, crop=0.0, return_eigenvalues=True)
    assert two.shape == (1, 8, 2, 72, 64)
    assert (vals[:, 0] >= vals[:, 1] - 1e-6).all()
    inside = image.abs() > 0.1 * image.abs().max()
    assert torch.allclose(two[0, :, 0][:, inside], one[0, :, 0][:, inside], atol=1e-4)
    inner = (two[0, :, 0].conj() * two[0, :, 1]).sum(0).abs()
    assert inner.max() < 1e-4                                 # orthogonal per pixel


def test_complex128_and_volume():
    k, maps, image = _problem(5, shape=(40, 36), coils=4)
    est = espirit_maps(k[None].to(torch.complex128), calib_width=16)
    assert est.dtype == torch.complex128
    inside = image.abs() > 0.1 * image.abs().max()
    assert _agreement(est[0, :, 0], maps.to(torch.complex128))[inside].min() > 0.95
    # a volume with a readout axis: maps per ky-kz slice, shape (C, M, D, H, W)
    vol = torch.stack([_problem(s, shape=(40, 36), coils=4)[0] for s in (5, 6)], 1)   # (C, D=2, H, W) hybrid
    kvol = fftnc(vol, 1)
    mv = espirit_maps_volume(kvol, calib_width=16)
    assert mv.shape == (4, 1, 2, 40, 36)
    assert torch.allclose(mv[:, :, 0], espirit_maps(vol[:, 0][None], calib_width=16)[0], atol=1e-4)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    k, _, _ = _problem(2)
    cpu = espirit_maps(k[None])
    gpu = espirit_maps(k[None].cuda())
    assert gpu.device.type == "cuda"
    assert torch.allclose(gpu.cpu(), cpu, atol=1e-3)


@pytest.mark.parametrize("kwargs, match", [
    ({"kernel_width": 21, "calib_width": 48}, "too large"),
    ({"calib_width": 4}, "calib_width"),
    ({"sets": 9}, "sets"),
    ({"thresh": 1.5}, "thresh"),
    ({"crop": -0.1}, "crop"),
])
def test_bad_parameters(kwargs, match):
    k, _, _ = _problem(0, shape=(48, 40))
    with pytest.raises(ValueError, match=match):
        espirit_maps(k[None], **kwargs)


def test_bad_input():
    with pytest.raises(ValueError, match="complex"):
        espirit_maps(torch.zeros(1, 4, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        espirit_maps(torch.zeros(4, 32, 32, dtype=torch.complex64))
    with pytest.raises(ValueError, match="readout"):
        espirit_maps_volume(torch.zeros(4, 32, 32, dtype=torch.complex64))
