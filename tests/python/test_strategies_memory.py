"""Memory by the CPU saved-tensor meter: the meter's own accounting (checkpoint recomputation
counted), and the strategies' peaks for the same network: gleam with M modules at most
1.2 x (e2e / M) + parameters, checkpoint and invertible well below e2e, and MoDL's CG data
consistency independent of the CG iteration count."""

from __future__ import annotations

import pytest
import torch
from torch.utils.checkpoint import checkpoint

from gleam_core.models import UnrolledNet
from gleam_core.train.losses import complex_l1
from gleam_core.train.memory import SavedTensorMeter, count_inner_saves
from gleam_core.train.optim import OptimizerConfig
from gleam_core.train.strategies import STRATEGIES
from ops_cases import Case
from train_cases import problem_for, tiny

# Memory does not depend on whether the inverses converge, so no Lipschitz bound is needed here.
pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore:invertible:UserWarning")]

N, D = 16, 32
UNIT = N * D * 4  # bytes of one float32 (N, D) activation


def _segment(layers, x):
    with count_inner_saves():
        for layer in layers:
            x = torch.tanh(layer(x))
        return x


@pytest.mark.parametrize("mode", ["e2e", "checkpoint"])
def test_meter_counts_saved_and_recomputed_tensors(mode):
    """K segments of two Linear+tanh layers on an input without grad. Each layer saves its
    input (addmm's mat1) and its tanh output, so e2e holds x and 2K outputs: 2K + 1 units.
    Checkpointing keeps the K segment inputs, then recomputes the last segment during backward,
    which re-saves its input and two new outputs: peak K + 2 units."""
    k = 4
    segments = [[torch.nn.Linear(D, D), torch.nn.Linear(D, D)] for _ in range(k)]
    params = [p for seg in segments for layer in seg for p in layer.parameters()]
    x = torch.randn(N, D)
    with SavedTensorMeter(params) as meter:
        h = x
        for seg in segments:
            h = _segment(seg, h) if mode == "e2e" else checkpoint(_segment, seg, h, use_reentrant=False,
                                                                   early_stop=False)
        forward = meter.current
        h.sum().backward()
    if mode == "e2e":
        assert forward == meter.peak == (2 * k + 1) * UNIT
    else:
        assert forward == k * UNIT
        assert meter.peak == (k + 2) * UNIT


CASE = Case("mem_2d", 2, 4, 1, (24, 24), 2, (1, 1, 1, 24))


def peak(name: str, type_: str = "pgd", unrolls: int = 8, **options) -> tuple[int, int]:
    torch.manual_seed(0)
    cg_iters = options.pop("cg_iters", 4)
    net = UnrolledNet(tiny(type_, unrolls=unrolls, cg_iters=cg_iters, denoiser={"features": 8}), "2d")
    problem, target = problem_for(CASE)
    strategy = STRATEGIES[name](net, complex_l1, OptimizerConfig(), 1, "cpu", **options)
    result = strategy.train_step(problem, target)
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    return result.peak_memory, params


@pytest.mark.parametrize("type_", ["pgd", "modl"])
def test_strategy_memory(type_):
    e2e, params = peak("e2e", type_)
    assert e2e > 0
    for modules in (2, 4, 8):
        gleam, _ = peak("gleam", type_, modules=modules)
        assert gleam <= 1.2 * e2e / modules + params, (modules, gleam, e2e)
    ckpt, _ = peak("checkpoint", type_)
    inv, _ = peak("invertible", type_)
    assert ckpt < 0.5 * e2e and inv < 0.5 * e2e, (ckpt, inv, e2e)
    assert inv < ckpt  # one output vs. every unroll's input


def test_cg_memory_independent_of_iterations():
    peaks = {it: peak("e2e", "modl", unrolls=2, cg_iters=it)[0] for it in (1, 4, 16)}
    assert len(set(peaks.values())) == 1, peaks
