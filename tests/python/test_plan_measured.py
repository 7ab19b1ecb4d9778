"""The estimate against real memory: the peak RSS growth of a fresh CPU process over one
training step (gleam_core.plan.measure)."""

from __future__ import annotations

import functools

import pytest

from gleam_core.plan import Geometry, estimate_step_memory
from gleam_core.plan.accounting import configure
from gleam_core.plan.measure import measure_step
from gleam_core.train.spec import parse_spec

pytestmark = pytest.mark.slow

# 8 PGD unrolls, a 32-feature ResNet, 2 x 8 coils at 224 x 224: an e2e step allocates ~0.55 GB.
SPEC = parse_spec({"data": {"train": {"synthetic": {}}, "val": {"synthetic": {}}}, "schedule": {"iterations": 1},
                   "model": {"unrolls": 8, "denoiser": {"features": 32}}}, check_data=False)
GEOMETRY = Geometry("2d", 2, 8, 1, (224, 224), (1, 224))


@functools.cache
def step_growth(strategy: str, **options) -> tuple[int, int]:
    """(predicted, measured) bytes the step allocates above what is resident before it."""
    report = estimate_step_memory(SPEC, strategy, geometry=GEOMETRY, **options)
    # Before the first step: parameters, buffers and the batch; the optimizer state appears at
    # its end, after the activations are gone, so the growth is the peak less those.
    predicted = report.peak_bytes - report.parameters - report.buffers - report.batch - report.optimizer_state
    measured = measure_step(configure(SPEC, strategy, **options), GEOMETRY)["growth_bytes"]
    return predicted, measured


def test_e2e_step_within_15_percent_of_peak_rss():
    predicted, measured = step_growth("e2e")
    assert measured >= 500e6, f"the step allocated only {measured / 1e6:.0f} MB"
    assert predicted == pytest.approx(measured, rel=0.15), (predicted / 2**20, measured / 2**20)


def test_difference_between_strategies_within_20_percent():
    p_e2e, m_e2e = step_growth("e2e")
    p_gleam, m_gleam = step_growth("gleam", modules=4)
    assert m_e2e - m_gleam > 200e6
    assert (p_e2e - p_gleam) == pytest.approx(m_e2e - m_gleam, rel=0.20), \
        ((p_e2e - p_gleam) / 2**20, (m_e2e - m_gleam) / 2**20)
