"""Sampling masks: fastMRI 1D semantics, Poisson disc (acceleration, calibration, determinism,
compiled == Python mirror, speed), k-t masks, specs and seeds."""

import math
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gleam_core.data import masks as M
from gleam_core.ops import _library

COMPILED = _library.EXTENSION is not None and hasattr(_library.EXTENSION, "poisson_disc")
needs_compiled = pytest.mark.skipif(not COMPILED, reason="compiled extension unavailable (Python mirror tested)")
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---- fastMRI 1D masks -------------------------------------------------------------------------

def _center(w, cf):
    num_low = round(w * cf)
    pad = (w - num_low + 1) // 2
    return pad, num_low


@FAST
@given(w=st.integers(64, 400), cf=st.sampled_from([0.04, 0.08]), acc=st.sampled_from([4, 8]),
       seed=st.integers(0, 2**31))
def test_random_mask_center_and_shape(w, cf, acc, seed):
    m = M.RandomMask1D([cf], [acc])((17, w), seed)
    assert m.shape == (1, 1, w) and m.dtype == torch.float32
    pad, num_low = _center(w, cf)
    assert m[0, 0, pad:pad + num_low].eq(1).all()
    assert set(m.unique().tolist()) <= {0.0, 1.0}


def test_random_mask_expected_acceleration_and_probability():
    w, cf, acc = 368, 0.08, 4
    f = M.RandomMask1D([cf], [acc])
    pad, num_low = _center(w, cf)
    outer = np.ones(w, bool)
    outer[pad:pad + num_low] = False
    draws = torch.stack([f((640, w), s)[0, 0] for s in range(400)]).numpy()
    prob = (w / acc - num_low) / (w - num_low)
    assert abs(draws[:, outer].mean() - prob) < 0.01           # each outer column kept with this probability
    assert abs(w / draws.sum(1).mean() - acc) < 0.1             # so the expected acceleration is the request


def test_random_mask_uses_fastmri_random_stream():
    """fastMRI: RandomState seeded with the file name's character codes; randint picks the pair,
    then uniform(size=W) < prob decides the outer columns."""
    name, w = "file1000001.h5", 320
    f = M.RandomMask1D([0.08, 0.04], [4, 8])
    rng = np.random.RandomState(tuple(map(ord, name)))
    k = rng.randint(2)
    cf, acc = [0.08, 0.04][k], [4, 8][k]
    pad, num_low = _center(w, cf)
    expected = rng.uniform(size=w) < (w / acc - num_low) / (w - num_low)
    expected[pad:pad + num_low] = True
    assert np.array_equal(f((10, w), name)[0, 0].numpy().astype(bool), expected)


def test_equispaced_mask_spacing():
    w, cf, acc = 200, 0.08, 4
    for seed in range(10):
        m = M.EquispacedMask1D([cf], [acc])((10, w), seed)[0, 0].numpy().astype(bool)
        pad, num_low = _center(w, cf)
        outside = m.copy()
        outside[pad:pad + num_low] = False
        cols = np.flatnonzero(outside)
        offset = cols[0] % acc
        lattice = np.arange(offset, w, acc)
        lattice = lattice[(lattice < pad) | (lattice >= pad + num_low)]
        assert np.array_equal(cols, lattice)


def test_1d_mask_determinism_and_errors():
    f = M.RandomMask1D([0.08], [4])
    assert torch.equal(f((8, 100), 5), f((8, 100), 5))
    assert torch.equal(f((8, 100), "a.h5"), f((8, 100), "a.h5"))
    assert not torch.equal(f((8, 100), 5), f((8, 100), 6))
    assert f((4, 8, 100), 1).shape == (1, 1, 1, 100)
    with pytest.raises(ValueError, match="cannot be reached"):
        M.RandomMask1D([0.5], [4])
    with pytest.raises(ValueError, match="equal length"):
        M.RandomMask1D([0.08, 0.04], [4])
    with pytest.raises(ValueError, match="integers"):
        M.EquispacedMask1D([0.08], [2.5])


# ---- Poisson disc -------------------------------------------------------------------------------

@FAST
@given(ny=st.integers(24, 160), nx=st.integers(24, 160), acc=st.floats(2.0, 12.0), seed=st.integers(0, 2**40),
       calib=st.integers(0, 12), crop=st.booleans())
def test_poisson_acceleration_calibration_and_crop(ny, nx, acc, seed, calib, crop):
    try:
        r = M.poisson_disc((ny, nx), acc, calib, seed, crop_corner=crop)
    except ValueError as exc:
        assert "cannot be reached" in str(exc)
        n_in = math.pi / 4 * ny * nx if crop else ny * nx
        assert ny * nx / acc > 0.9 * n_in or ny * nx / acc < calib * calib + 1
        return
    m = r.mask
    assert m.shape == (ny, nx) and m.dtype == bool
    assert r.samples == m.sum()
    assert abs(ny * nx / m.sum() / acc - 1) <= 0.05 or r.adjusted != 0
    assert abs(ny * nx / m.sum() - acc) <= max(0.05 * acc, acc * acc / (ny * nx) + 1e-9)
    cy0, cx0 = (ny - calib) // 2, (nx - calib) // 2
    assert m[cy0:cy0 + calib, cx0:cx0 + calib].all()
    if crop:  # nothing outside the ellipse inscribed around the calibration box
        yy, xx = np.mgrid[:ny, :nx]
        ax = np.maximum(np.abs(2 * xx - nx) - calib, 0) / max(nx - calib, 1)
        ay = np.maximum(np.abs(2 * yy - ny) - calib, 0) / max(ny - calib, 1)
        box = np.zeros_like(m)
        box[cy0:cy0 + calib, cx0:cx0 + calib] = True
        assert not (m & (ax ** 2 + ay ** 2 >= 1) & ~box).any()


def test_poisson_variable_density_and_disc_property():
    r = M.poisson_disc((160, 128), 8, 16, 3)
    m = r.mask
    yy, xx = np.mgrid[:160, :128]
    rad = np.hypot((yy - 80) / 80, (xx - 64) / 64)
    inner = m[(rad > 0.15) & (rad < 0.35)].mean()
    outer = m[(rad > 0.7) & (rad < 0.95)].mean()
    assert inner > 2 * outer > 0            # variable density: denser near the center
    # Poisson disc: no two samples outside the calibration box are 4-neighbours far out
    far = m & (rad > 0.6)
    assert not (far[1:, :] & far[:-1, :]).any() and not (far[:, 1:] & far[:, :-1]).any()


def test_poisson_deterministic_per_seed():
    a = M.poisson_disc((64, 48), 6, 8, 11)
    b = M.poisson_disc((64, 48), 6, 8, 11)
    c = M.poisson_disc((64, 48), 6, 8, 12)
    assert np.array_equal(a.mask, b.mask) and not np.array_equal(a.mask, c.mask)
    assert np.array_equal(M.poisson_disc((64, 48), 6, 8, "vol1.h5").mask, M.poisson_disc((64, 48), 6, 8, "vol1.h5").mask)


@needs_compiled
@pytest.mark.parametrize("shape, acc, calib, seed, crop", [
    ((32, 24), 4, (6, 6), 1, True), ((40, 33), 3, (4, 8), 2, False), ((17, 19), 5, (0, 0), 3, True),
    ((64, 64), 8, (10, 10), "file1.h5", True), ((12, 10), 3, (2, 2), 1, True), ((9, 7), 2.5, (1, 3), 5, False),
    ((80, 60), 16, (8, 8), 9, True), ((50, 70), 1.5, (4, 4), 123456789012, False),
])
def test_poisson_compiled_and_python_mirror_agree(shape, acc, calib, seed, crop):
    a = M.poisson_disc(shape, acc, calib, seed, crop_corner=crop, backend="compiled")
    b = M.poisson_disc(shape, acc, calib, seed, crop_corner=crop, backend="python")
    assert np.array_equal(a.mask, b.mask)
    assert (a.samples, a.iterations, a.adjusted, a.slope) == (b.samples, b.iterations, b.adjusted, b.slope)


def test_poisson_tiny_grids_never_fail():
    """Counts jump on tiny grids; the result is in the tolerance window, or, where no count is
    (4x4 at 3x: 5.33 samples wanted, window [5.08, 5.61]), exactly the nearest count."""
    adjusted = 0
    for seed in range(40):
        r = M.poisson_disc((10, 9), 3.3, 2, seed, crop_corner=False)
        assert math.ceil(90 / (3.3 * 1.05)) <= r.samples <= math.floor(90 / (3.3 * 0.95))
        assert r.mask[4:6, 3:5].all()
        t = M.poisson_disc((4, 4), 3.0, 0, seed, crop_corner=False)
        assert t.samples == t.mask.sum() == 5
        adjusted += t.adjusted != 0
    assert adjusted > 0   # the completion step did run


def test_poisson_unreachable_and_bad_parameters():
    with pytest.raises(ValueError, match="reachable range"):
        M.poisson_disc((32, 32), 1.05, 4, 0)               # the cropped corners alone exceed 5% of the grid
    with pytest.raises(ValueError, match="reachable range"):
        M.poisson_disc((32, 32), 20, 16, 0)                # the calibration box alone is 1/4 of the grid
    with pytest.raises(ValueError, match="calib"):
        M.poisson_disc((32, 32), 4, 40, 0)
    with pytest.raises(ValueError, match="acceleration"):
        M.poisson_disc((32, 32), 0.5, 4, 0)
    with pytest.raises(ValueError, match="tol"):
        M.poisson_disc((32, 32), 4, 4, 0, tol=0)


@needs_compiled
def test_poisson_320x256_is_fast():
    times = []
    for seed in range(3):
        t = time.perf_counter()
        r = M.poisson_disc((320, 256), 8, 20, seed)
        times.append(time.perf_counter() - t)
        assert abs(320 * 256 / r.samples / 8 - 1) <= 0.05
    assert min(times) < 0.1, times


def test_poisson_mask_func_shapes():
    f = M.PoissonMask2D(4, 8)
    assert f((48, 40), 0).shape == (1, 48, 40)
    assert f((12, 48, 40), 0).shape == (1, 1, 48, 40)
    assert torch.equal(f((12, 48, 40), 0)[0, 0], f((48, 40), 0)[0])


# ---- k-t masks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("shift", ["golden", "random"])
def test_kt_mask(shift):
    frames, h, w = 10, 32, 96
    f = M.KtMask(8, center_lines=6, shift=shift)
    m = f((frames, h, w), 3)
    assert m.shape == (1, frames, 1, w)
    lines = m[0, :, 0]
    assert (lines.sum(1) == round(w / 8)).all()                 # every frame the same count
    c0 = (w - 6 + 1) // 2
    assert lines[:, c0:c0 + 6].eq(1).all()
    assert len({tuple(row.tolist()) for row in lines}) >= frames - 1   # the pattern moves per frame
    assert lines.sum(0).gt(0).sum() > 2.5 * round(w / 8)        # and covers more of k-space over time
    assert torch.equal(m, f((frames, h, w), 3)) and not torch.equal(m, f((frames, h, w), 4))


def test_kt_mask_partial_echo_and_errors():
    m = M.KtMask(4, partial_echo=0.75)((6, 40, 32), 0)
    assert m.shape == (1, 6, 40, 32)
    assert m[0, :, :10].eq(0).all() and m[0, :, 10:].sum() > 0
    with pytest.raises(ValueError, match="cannot be reached"):
        M.KtMask(16, center_lines=8)((4, 16, 32), 0)
    with pytest.raises(ValueError, match="shift"):
        M.KtMask(4, shift="linear")


# ---- specs and seeds ----------------------------------------------------------------------------

def test_specs_round_trip_and_errors():
    for f in (M.RandomMask1D([0.08], [4]), M.EquispacedMask1D([0.04], [8]), M.PoissonMask2D(6, (12, 10)),
              M.KtMask(5, 4, "random", 2.0, 0.8)):
        g = M.mask_from_spec(f.to_spec())
        shape = (6, 40, 32)
        assert type(g) is type(f) and torch.equal(f(shape, 7), g(shape, 7))
    assert M.mask_from_spec(None) is None
    with pytest.raises(ValueError, match="unknown type"):
        M.mask_from_spec({"type": "spiral"})
    with pytest.raises(ValueError, match=r"'poisson': missing \['acceleration'\]; unknown \['accel'\] "
                                         r"\(required keys \['acceleration'\], optional \['calib'"):
        M.mask_from_spec({"type": "poisson", "accel": 4})
    with pytest.raises(ValueError, match=r"'random': missing \['center_fractions'\]"):
        M.mask_from_spec({"type": "random", "accelerations": [8]})


def test_training_seed():
    seeds = {M.training_seed(0, e, i) for e in range(5) for i in range(50)}
    assert len(seeds) == 250
    assert M.training_seed(3, 1, 2) == M.training_seed(3, 1, 2) != M.training_seed(4, 1, 2)
