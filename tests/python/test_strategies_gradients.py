"""Gradient agreement between strategies (float64): checkpoint equals e2e to 1e-6 (relative);
invertible equals e2e within 1e-5 on a contractive configuration (maps normalized so that
||A^H A|| <= 1, step 0.5, lam 0.5 with converged CG, denoiser residual scaled by 0.05)."""

from __future__ import annotations

import warnings

import pytest
import torch

from gleam_core.models import InverseOptions, UnrolledNet
from gleam_core.train.losses import complex_l1
from gleam_core.train.optim import OptimizerConfig
from gleam_core.train.strategies import STRATEGIES
from ops_cases import CASES
from train_cases import problem_for, tiny

# These contractive configurations bound the denoiser by out_scale, not by a Lipschitz cap.
pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.filterwarnings("ignore:invertible:UserWarning")]

CONTRACTIVE = dict(step=0.5, lam=0.5, learn_lam=True, cg_iters=60, denoiser={"out_scale": 0.05})


def gradients(name: str, type_: str, case, unrolls: int = 4, **options):
    torch.manual_seed(7)
    net = UnrolledNet(tiny(type_, unrolls=unrolls, **CONTRACTIVE), "2d" if case.fft_ndim == 2 else "3d").double()
    problem, target = problem_for(case, torch.complex128, seed=3)
    strategy = STRATEGIES[name](net, complex_l1, OptimizerConfig(), 1, "cpu", **options)
    loss = complex_l1(strategy.forward_train(problem), target)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()]), strategy


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("type_", ["pgd", "modl"])
@pytest.mark.parametrize("segment", [1, 2])
def test_checkpoint_matches_e2e(type_, segment):
    ref, _ = gradients("e2e", type_, CASES[0])
    got, _ = gradients("checkpoint", type_, CASES[0], segment=segment)
    assert ref.abs().max() > 0
    assert rel(got, ref) < 1e-6


@pytest.mark.parametrize("type_", ["pgd", "modl"])
@pytest.mark.parametrize("case", [CASES[0], CASES[3]], ids=lambda c: c.name)
def test_invertible_matches_e2e_when_contractive(type_, case):
    ref, _ = gradients("e2e", type_, case)
    got, strategy = gradients("invertible", type_, case, options=InverseOptions(iters=200, tol=1e-12))
    errors = strategy.extra()
    assert 0 <= float(errors["inversion_error"]) < 1e-8
    assert float(errors["unroll_mismatch"]) < 1e-8
    assert rel(got, ref) < 1e-5


def test_invertible_reports_a_failing_inverse():
    """Too few fixed-point iterations: the reported inversion error must show it."""
    ref, _ = gradients("e2e", "pgd", CASES[0])
    got, strategy = gradients("invertible", "pgd", CASES[0], options=InverseOptions(iters=1, tol=0.0))
    err = float(strategy.extra()["inversion_error"])
    assert err > 1e-3
    assert rel(got, ref) > 1e-6


def test_invertible_modl_anchors_bound_the_amplified_inversion_error():
    """MoDL's CG-DC inverse multiplies errors by up to 1 + 1/lam (21 here) per unroll: in float32,
    without anchors, rounding alone grows past 1 over 8 unrolls (and a warning says so); the
    automatic anchor spacing keeps the error below 1e-2 and the gradients at e2e's."""
    def run(name: str, **options):
        torch.manual_seed(7)
        net = UnrolledNet(tiny("modl", unrolls=8, lam=0.05, cg_iters=10, denoiser={"out_scale": 0.05}), "2d")
        problem, target = problem_for(CASES[0], torch.complex64, seed=3)
        strategy = STRATEGIES[name](net, complex_l1, OptimizerConfig(), 1, "cpu", **options)
        complex_l1(strategy.forward_train(problem), target).backward()
        return torch.cat([p.grad.flatten() for p in net.parameters()]), strategy

    ref, _ = run("e2e")
    got, auto = run("invertible")
    assert auto.anchor_every == 2  # 1 + floor(log(1e-2 / 1e-4) / log(21))
    assert float(auto.extra()["inversion_error"]) < 1e-2
    assert rel(got, ref) < 1e-5
    _, bare = run("invertible", anchor_every=8)
    err = float(bare.extra()["inversion_error"])
    assert err > 1
    with pytest.warns(UserWarning, match=r"invertible: inversion error .* > 0.1"):
        bare.review([{"loss": [1.0], "inversion_error": err}])  # as the trainer does per logging interval


def test_checkpoint_segment_must_divide_unrolls():
    with pytest.raises(ValueError, match="checkpoint.segment"):
        gradients("checkpoint", "pgd", CASES[0], unrolls=4, segment=3)


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["e2e", "checkpoint", "invertible"])
def test_cuda_gradients_and_memory(name):
    """On CUDA each whole-network strategy gives the CPU e2e gradients, and its step reports
    an allocator peak (checkpoint and invertible below e2e)."""
    ref, _ = gradients("e2e", "pgd", CASES[0])
    torch.manual_seed(7)
    net = UnrolledNet(tiny("pgd", unrolls=4, **CONTRACTIVE), "2d").double().cuda()
    problem, target = problem_for(CASES[0], torch.complex128, seed=3)
    problem, target = problem.to("cuda"), target.cuda()
    options = {"options": InverseOptions(iters=200, tol=0.0)} if name == "invertible" else {}
    strategy = STRATEGIES[name](net, complex_l1, OptimizerConfig(), 1, "cuda", **options)
    complex_l1(strategy.forward_train(problem), target).backward()
    got = torch.cat([p.grad.flatten() for p in net.parameters()]).cpu()
    assert rel(got, ref) < (1e-6 if name != "invertible" else 1e-5)
    peaks = {}
    for n in ("e2e", name):
        s = STRATEGIES[n](net, complex_l1, OptimizerConfig(), 1, "cuda", **(options if n == name else {}))
        peaks[n] = s.train_step(problem, target).peak_memory
    assert peaks["e2e"] > 0
    if name != "e2e":
        assert peaks[name] < peaks["e2e"]


@pytest.mark.filterwarnings("default")
def test_invertible_warns_without_a_lipschitz_bound():
    for bound in (None, 1.5):
        net = UnrolledNet(tiny("pgd", denoiser={"lipschitz": bound}), "2d")
        with pytest.warns(UserWarning, match="lipschitz"):
            STRATEGIES["invertible"](net, complex_l1, OptimizerConfig(), 1, "cpu")
    net = UnrolledNet(tiny("pgd", denoiser={"lipschitz": 0.9}), "2d")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        STRATEGIES["invertible"](net, complex_l1, OptimizerConfig(), 1, "cpu")


@pytest.mark.parametrize("type_", ["pgd", "modl"])
def test_invertible_without_diagnostics_same_gradients_nothing_reported(type_):
    """diagnostics=False (timed steps) skips the inverses at anchors and the network input, whose
    results were only compared with the known inputs: the gradients are bitwise the same."""
    ref, on = gradients("invertible", type_, CASES[0], options=InverseOptions(iters=5, tol=1e-6), anchor_every=2)
    got, off = gradients("invertible", type_, CASES[0], options=InverseOptions(iters=5, tol=1e-6), anchor_every=2,
                         diagnostics=False)
    assert torch.equal(got, ref)
    assert "inversion_error" in on.extra() and off.extra() == {}
