"""GLEAM: local losses on detached inputs (no gradient crosses a module boundary), every module
steps on every batch, sequential and multi-lane [cpu, cpu] runs give identical updates, and
inference runs the whole chain."""

from __future__ import annotations

import copy

import pytest
import torch

from gleam_core.models import UnrolledNet
from gleam_core.train.losses import complex_l1
from gleam_core.train.optim import OptimizerConfig
from gleam_core.train.strategies import Gleam
from ops_cases import CASES
from train_cases import problem_for, tiny

pytestmark = pytest.mark.usefixtures("single_thread")


def make_gleam(modules=2, unrolls=4, optim=OptimizerConfig(), seed=0, dtype=torch.float64, **kw) -> Gleam:
    torch.manual_seed(seed)
    net = UnrolledNet(tiny("pgd", unrolls=unrolls), "2d").to(dtype)
    return Gleam(net, complex_l1, optim, 10, "cpu", modules=modules, **kw)


def test_no_gradient_crosses_a_module_boundary():
    g = make_gleam()
    problem, target = problem_for(CASES[0], torch.complex128)
    first, second = g.units
    first.begin()
    second.begin()
    out0 = first.forward(problem.ahy, problem)  # keeps its graph
    crossed = []
    out0.register_hook(lambda grad: crossed.append(grad))
    second.update(second.forward(out0, problem), target)
    assert not crossed
    assert all(p.grad is None for p in first.chain.parameters())
    assert all(p.grad is not None for p in second.chain.parameters())


def test_each_module_steps_on_its_local_loss():
    """With plain SGD, each module's update is -lr * the gradient of its own loss, computed
    from the previous module's detached output at the pre-step weights."""
    lr = 0.1
    g = make_gleam(modules=2, optim=OptimizerConfig(name="sgd", lr=lr, momentum=0.0))
    problem, target = problem_for(CASES[0], torch.complex128)
    before = [[p.detach().clone() for p in u.chain.parameters()] for u in g.units]
    expected, x = [], problem.ahy
    for unit in g.units:
        params = list(unit.chain.parameters())
        out = unit.chain(problem, x.detach())
        grads = torch.autograd.grad(complex_l1(out, target), params)
        expected.append([p.detach() - lr * gr for p, gr in zip(params, grads)])
        x = out.detach()
    result = g.train_step(problem, target)
    assert len(result.losses) == 2
    for unit, old, exp in zip(g.units, before, expected):
        new = list(unit.chain.parameters())
        assert any(not torch.equal(o, n) for o, n in zip(old, new))
        for n, e in zip(new, exp):
            torch.testing.assert_close(n.detach(), e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("overlap", [True, False])
def test_sequential_and_multilane_cpu_updates_identical(overlap):
    problem, target = problem_for(CASES[0], torch.complex128)
    seq = make_gleam(modules=4)
    multi = make_gleam(modules=4, devices=["cpu", "cpu"], overlap=overlap)
    assert not seq.overlap and multi.overlap == overlap
    for _ in range(3):
        ls = seq.train_step(problem, target).resolve()["loss"]
        lm = multi.train_step(problem, target).resolve()["loss"]
        assert ls == lm
    for a, b in zip(seq.model.parameters(), multi.model.parameters()):
        assert torch.equal(a, b)


def test_inference_runs_the_whole_chain():
    g = make_gleam(modules=2)
    problem, _ = problem_for(CASES[0], torch.complex128)
    torch.testing.assert_close(g.reconstruct(problem), g.model(problem).detach())


def test_bad_options():
    with pytest.raises(ValueError, match="modules must divide"):
        make_gleam(modules=3)
    with pytest.raises(ValueError, match=r"gleam.devices\[1\]"):
        make_gleam(devices=["cpu", "tpu"])
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            make_gleam(devices=["cuda"])
    with pytest.raises(ValueError, match="gleam.overlap"):
        make_gleam(overlap="sometimes")


def test_state_dict_round_trip():
    problem, target = problem_for(CASES[0], torch.complex128)
    g = make_gleam(modules=2)
    g.train_step(problem, target)
    state = copy.deepcopy(g.state_dict())  # as saved to a file: no tensors shared with g
    h = make_gleam(modules=2)
    h.model.load_state_dict(g.model.state_dict())
    h.load_state_dict(state)
    g.train_step(problem, target)
    h.train_step(problem, target)
    for a, b in zip(g.model.parameters(), h.model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="gleam.modules must match"):
        make_gleam(modules=4).load_state_dict(state)


@pytest.mark.cuda
@pytest.mark.parametrize("devices", [["cuda"], ["cuda", "cuda"]])
def test_cuda_streams_match_cpu(devices):
    problem, target = problem_for(CASES[0], torch.complex128)
    cpu = make_gleam(modules=2)
    gpu = make_gleam(modules=2, devices=devices)
    pg = problem.to("cuda")
    for _ in range(2):
        cpu.train_step(problem, target)
        gpu.train_step(pg, target.cuda()).resolve()
    for a, b in zip(cpu.model.parameters(), gpu.model.parameters()):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(gpu.reconstruct(pg).cpu(), cpu.reconstruct(problem), rtol=1e-9, atol=1e-9)


@pytest.mark.cuda
def test_mixed_cpu_cuda_lanes_refused():
    with pytest.raises(ValueError, match="mixes CPU and CUDA"):
        make_gleam(devices=["cuda", "cpu"])
