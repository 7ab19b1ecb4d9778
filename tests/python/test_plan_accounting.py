"""The fake-tensor memory estimate against the real saved-tensor meter (all four strategies;
2D, 3D and cine), its categories, the op-workspace model and its errors."""

from __future__ import annotations

import time

import pytest
import torch

from gleam_core.models import Problem, fft_ndim_of
from gleam_core.plan import Geometry, estimate_step_memory, geometry_of
from gleam_core.plan.accounting import batch_tensors, build_strategy_for, configure, op_workspace
from gleam_core.train.spec import parse_spec

pytestmark = pytest.mark.usefixtures("single_thread")

GEOMETRIES = {
    "2d": Geometry("2d", 2, 4, 1, (32, 24), (1, 24)),
    "3d": Geometry("3d", 1, 3, 1, (12, 16, 10), (1, 16, 10)),
    "cine": Geometry("cine", 1, 3, 1, (5, 16, 12), (5, 1, 12)),
}
CASES = [("e2e", {}), ("checkpoint", {"segments": 2}), ("invertible", {}), ("gleam", {"modules": 2})]


def small_spec(kind: str, **model) -> object:
    conv = {"2d": "2d", "3d": "3d", "cine": "2+1d"}[kind]
    return parse_spec({"data": {"kind": kind, "train": {"synthetic": {}}, "val": {"synthetic": {}}},
                       "schedule": {"iterations": 1}, "masks": {"type": "random", "accelerations": [4],
                                                                "center_fractions": [0.1]},
                       "model": {"unrolls": 4, "denoiser": {"features": 8, "conv": conv, "lipschitz": 0.9}, **model}},
                      check_data=False)


def real_saved_peak(spec, geometry: Geometry) -> int:
    """The strategy's own saved-tensor meter over one real CPU step."""
    strat = build_strategy_for(spec, geometry, torch.device("cpu"))
    batch = batch_tensors(geometry)
    batch["maps"] /= batch["maps"].abs().square().sum(1, keepdim=True).sqrt()
    problem = Problem.from_data(batch["kspace"], batch["maps"], batch["mask"], fft_ndim_of(geometry.kind))
    return int(strat.train_step(problem, batch["target"]).peak_memory)


@pytest.mark.parametrize("kind", sorted(GEOMETRIES))
@pytest.mark.parametrize("strategy,options", CASES, ids=[c[0] for c in CASES])
def test_saved_activations_match_the_meter(kind, strategy, options):
    spec = configure(small_spec(kind), strategy, **options)
    g = GEOMETRIES[kind]
    report = estimate_step_memory(spec, geometry=g)
    measured = real_saved_peak(spec, g)
    assert measured > 0
    assert report.saved_peak == pytest.approx(measured, rel=0.02), (report.saved_peak, measured)
    # At the step's peak the saved activations are most of what the step allocates.
    assert 0 < report.activations <= report.saved_peak
    # The categories at the peak make up the peak; the largest workspace is reported apart.
    assert report.peak_bytes == sum(report.categories().values())


def test_categories_are_exact_for_parameters_and_adam_state():
    spec = small_spec("2d")
    g = GEOMETRIES["2d"]
    e2e = estimate_step_memory(spec, "e2e", geometry=g)
    strat = build_strategy_for(configure(spec, "e2e"), g, torch.device("cpu"))
    param_bytes = sum(p.numel() * p.element_size() for p in strat.model.parameters())
    assert e2e.parameters == param_bytes
    # Adam: exp_avg and exp_avg_sq per parameter, plus a scalar step each.
    n_params = len(list(strat.model.parameters()))
    assert e2e.module_optimizer_state == [2 * param_bytes + 4 * n_params]
    gleam = estimate_step_memory(spec, "gleam", modules=4, geometry=g)
    assert len(gleam.module_optimizer_state) == 4
    assert sum(gleam.module_parameters) == param_bytes
    assert sum(gleam.module_optimizer_state) == 2 * param_bytes + 4 * n_params
    # the batch: kspace + maps + target + A^H y (complex64) + the compact mask (float32), as
    # loaded and the operator's canonical copy
    b, c, (h, w) = g.batch, g.coils, g.spatial
    assert e2e.batch == 8 * (b * c * h * w * 2 + 2 * b * h * w) + 2 * 4 * b * w


def test_memory_ordering_and_unroll_scaling():
    spec = small_spec("2d")
    g = Geometry("2d", 1, 4, 1, (64, 48), (1, 48))
    e2e = estimate_step_memory(spec, "e2e", geometry=g).activations
    e2e8 = estimate_step_memory(spec, "e2e", unrolls=8, geometry=g).activations
    assert e2e8 == pytest.approx(2 * e2e, rel=0.05)   # saved activations grow with the unrolls
    for strategy, options in CASES[1:]:
        assert estimate_step_memory(spec, strategy, geometry=g, **options).activations < e2e


def test_full_scale_3d_in_seconds_and_no_memory():
    spec = small_spec("3d", unrolls=12)
    spec.model.denoiser.features = 64
    spec.masks = {"type": "poisson", "acceleration": 8, "calib": [16, 16]}
    g = geometry_of(spec, full_scale=True)
    assert (g.coils, g.spatial, g.mask_spatial) == (8, (256, 320, 320), (1, 320, 320))
    t0 = time.perf_counter()
    report = estimate_step_memory(spec, "gleam", modules=12, device="cuda", geometry=g)
    assert time.perf_counter() - t0 < 120
    volume = 8 * 256 * 320 * 320   # one complex64 image
    # one unroll of a 64-feature 3D ResNet holds tens of images' worth of activations
    assert 20 * volume < report.activations < 400 * volume
    assert report.workspace > 0     # 2D Poisson masks on CUDA: coil-chunk buffers


def test_workspace_model():
    x2 = torch.empty(2, 1, 64, 48, dtype=torch.complex64, device="meta")
    maps2 = torch.empty(2, 8, 1, 64, 48, dtype=torch.complex64, device="meta")
    row_mask = torch.empty(2, 1, 1, 48, device="meta")
    grid_mask = torch.empty(2, 1, 64, 48, device="meta")
    assert op_workspace("sense_normal", (x2, maps2, row_mask, [-1], 0), "cuda") == 0   # fused row kernel
    chunk = op_workspace("sense_normal", (x2, maps2, grid_mask, [-2, -1], 0), "cuda")
    assert chunk == 2 * 8 * 2 * 64 * 48 * 8                                            # two 8-coil buffers
    assert op_workspace("sense_normal", (x2, maps2, grid_mask, [-2, -1], 0), "cpu") == 0
    lam = torch.empty(2, device="meta")
    assert op_workspace("cg_solve", (x2, maps2, row_mask, lam, None, [-1], 10, 0.0, 0), "cpu") == 3 * 2 * 64 * 48 * 8


def test_errors_name_the_argument():
    spec = small_spec("2d")
    g = GEOMETRIES["2d"]
    with pytest.raises(ValueError, match="strategy must be one of"):
        estimate_step_memory(spec, "magic", geometry=g)
    with pytest.raises(ValueError, match="modules=3 must divide the unrolls"):
        estimate_step_memory(spec, "gleam", modules=3, geometry=g)
    with pytest.raises(ValueError, match="segments=3 must divide"):
        estimate_step_memory(spec, "checkpoint", segments=3, geometry=g)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        estimate_step_memory(spec, "e2e", device="tpu", geometry=g)
