"""Unrolled networks: shapes for 2D/3D/cine, learnable step/lam used, weight sharing, module
split, inverses, and rebuilding from a description."""

from __future__ import annotations

import pytest
import torch

from gleam_core.models import InverseOptions, UnrolledNet, from_channels, invert_residual, solve_hpd, to_channels
from ops_cases import CASES, rel
from train_cases import problem_for, tiny

pytestmark = pytest.mark.usefixtures("single_thread")

KINDS = {"2d_even_1dmask": "2d", "2d_odd_2dmask_M2": "2d", "3d_2dmask": "3d", "cine_kt": "cine"}


def test_channels_round_trip():
    x = torch.randn(2, 3, 5, 4, dtype=torch.complex64)
    c = to_channels(x)
    assert c.shape == (2, 6, 5, 4) and c.dtype == torch.float32
    torch.testing.assert_close(c[:, 2], x[:, 1].real)
    torch.testing.assert_close(c[:, 3], x[:, 1].imag)
    torch.testing.assert_close(from_channels(c), x)
    with pytest.raises(ValueError, match="even number of real channels"):
        from_channels(torch.randn(1, 3, 4, 4))


@pytest.mark.parametrize("case", [c for c in CASES if c.name in KINDS], ids=lambda c: c.name)
@pytest.mark.parametrize("type_", ["pgd", "modl"])
def test_forward_shapes_and_dtypes(case, type_):
    kind = KINDS[case.name]
    problem, _ = problem_for(case)
    net = UnrolledNet(tiny(type_, cg_iters=3), kind, map_sets=case.sets)
    out = net(problem)
    assert out.shape == problem.ahy.shape and out.dtype == torch.complex64
    assert torch.isfinite(torch.view_as_real(out)).all()
    p128, _ = problem_for(case, torch.complex128)
    out128 = net.double()(p128)
    assert out128.dtype == torch.complex128


def test_cine_factorized_conv_and_conv_checks():
    case = next(c for c in CASES if c.name == "cine_kt")
    problem, _ = problem_for(case)
    net = UnrolledNet(tiny("pgd", denoiser={"conv": "2+1d"}), "cine")
    kernels = {tuple(m.kernel_size) for m in net.modules() if isinstance(m, torch.nn.Conv3d)}
    assert kernels == {(1, 3, 3), (3, 1, 1)}
    assert net(problem).shape == problem.ahy.shape
    with pytest.raises(ValueError, match="needs 3 spatial axes"):
        UnrolledNet(tiny("pgd", denoiser={"conv": "3d"}), "2d")
    with pytest.raises(ValueError, match="cannot filter cine"):
        UnrolledNet(tiny("pgd", denoiser={"conv": "2d"}), "cine")


def test_learnable_step_and_lam_are_used():
    problem, target = problem_for(CASES[0])
    pgd = UnrolledNet(tiny("pgd"), "2d")
    loss = (pgd(problem) - target).abs().mean()
    loss.backward()
    steps = [u.layers[0].step for u in pgd.unrolls]
    assert all(isinstance(s, torch.nn.Parameter) and s.grad is not None and s.grad.abs() > 0 for s in steps)
    modl = UnrolledNet(tiny("modl", learn_lam=True, lam=0.3), "2d")
    (modl(problem) - target).abs().mean().backward()
    dc = modl.unrolls[0].layers[1]
    assert dc.log_lam.grad is not None and dc.log_lam.grad.abs() > 0
    torch.testing.assert_close(dc.lam, torch.tensor(0.3))
    fixed = UnrolledNet(tiny("modl", learn_lam=False), "2d")
    assert "unrolls.0.layers.1.log_lam" in dict(fixed.named_buffers())


def test_cg_iterations_configurable():
    problem, _ = problem_for(CASES[0], torch.complex128)
    outs = []
    for iters in (1, 2, 30):
        torch.manual_seed(0)
        with torch.no_grad():
            outs.append(UnrolledNet(tiny("modl", cg_iters=iters, unrolls=1), "2d").double()(problem))
    assert rel(outs[0], outs[2]) > 1e-3 and rel(outs[1], outs[2]) < rel(outs[0], outs[2])


def test_weight_sharing_and_split():
    per_unroll = UnrolledNet(tiny("pgd", unrolls=4), "2d")
    shared = UnrolledNet(tiny("pgd", unrolls=4, share_weights=True), "2d")
    grouped = UnrolledNet(tiny("pgd", unrolls=4, share_weights=True), "2d", share_groups=2)

    def count(net):
        return sum(p.numel() for p in net.parameters())
    den = count(shared) - 4  # four steps, one denoiser
    assert count(per_unroll) == 4 * den + 4 and count(grouped) == 2 * den + 4
    chains = per_unroll.split(2)
    assert [c.first for c in chains] == [0, 2] and all(len(c.unrolls) == 2 for c in chains)
    assert sum(count(c) for c in chains) == count(per_unroll)
    assert {id(p) for p in chains[0].parameters()}.isdisjoint(id(p) for p in chains[1].parameters())
    problem, _ = problem_for(CASES[0])
    with torch.no_grad():
        torch.testing.assert_close(chains[1](problem, chains[0](problem)), per_unroll(problem))
    assert len(grouped.split(2)) == 2
    with pytest.raises(ValueError, match="share weights"):
        shared.split(2)
    with pytest.raises(ValueError, match="modules must divide"):
        per_unroll.split(3)


@pytest.mark.parametrize("type_", ["pgd", "modl"])
def test_unroll_inverse_rebuilds_input(type_):
    problem, _ = problem_for(CASES[0], torch.complex128)
    net = UnrolledNet(tiny(type_, step=0.5, lam=0.5, cg_iters=60, denoiser={"out_scale": 0.05}), "2d").double()
    x = problem.ahy + 0.1 * torch.randn_like(problem.ahy)
    unroll = net.unrolls[0]
    with torch.no_grad():
        y = unroll(x, problem)
    rebuilt = unroll.inverse(y, problem, InverseOptions(iters=200, tol=1e-13))
    assert rel(rebuilt, x) < 1e-8


def test_description_round_trip():
    net = UnrolledNet(tiny("modl", unrolls=2, share_weights=True), "cine", map_sets=2, share_groups=2)
    again = UnrolledNet.from_description(net.description())
    again.load_state_dict(net.state_dict())
    assert again.description() == net.description()
    assert again.kind == "cine" and again.map_sets == 2


def test_solve_hpd_and_fixed_point_safeguard():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 6, 6, dtype=torch.complex128, generator=g)
    mats = q @ q.mH + 0.5 * torch.eye(6, dtype=torch.complex128)     # Hermitian positive definite
    b = torch.randn(2, 6, dtype=torch.complex128, generator=g)
    x = solve_hpd(lambda v: (mats @ v.unsqueeze(-1)).squeeze(-1), b, torch.zeros_like(b),
                  InverseOptions(iters=20, tol=1e-12))
    torch.testing.assert_close(x, torch.linalg.solve(mats, b))
    y = torch.randn(3, 5, dtype=torch.complex128, generator=g)
    contractive = invert_residual(lambda v: 0.5 * v.roll(1, -1), y, InverseOptions(iters=80, tol=0.0))
    torch.testing.assert_close(contractive + 0.5 * contractive.roll(1, -1), y)
    diverging = invert_residual(lambda v: 3.0 * v, y, InverseOptions(iters=2000, tol=0.0))
    assert torch.isfinite(torch.view_as_real(diverging)).all()  # the best iterate, not an overflow


def test_gradient_step_inverse_near_projection():
    """t = 0.95: the fixed-point rate would be 0.95 per iteration; CG rebuilds the input."""
    problem, _ = problem_for(CASES[0], torch.complex128)
    dc = UnrolledNet(tiny("pgd", step=0.95, unrolls=1), "2d").double().unrolls[0].layers[0]
    x = problem.ahy + torch.randn_like(problem.ahy)
    with torch.no_grad():
        y = dc(x, problem)
    assert rel(dc.inverse(y, problem, InverseOptions(iters=60, tol=1e-14)), x) < 1e-8


@pytest.mark.parametrize("body,conv", [("resnet", "auto"), ("cnn", "auto"), ("resnet", "2+1d")])
def test_lipschitz_bound_holds_and_inverts(body, conv):
    """With weights blown up 10x (so every bound is active), adversarially searched input pairs
    change f's output by at most lipschitz times their distance, and the denoiser's fixed-point
    inverse converges."""
    kind = "cine" if conv == "2+1d" else "2d"
    net = UnrolledNet(tiny("modl", denoiser={"type": body, "conv": conv, "lipschitz": 0.9, "features": 6}), kind)
    den = net.unrolls[0].layers[0]
    convs = [m for m in den.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))]
    with torch.no_grad():
        for m in convs:
            m.parametrizations.weight.original.mul_(10.0)
            assert torch.linalg.vector_norm(m.weight) < 0.5 * torch.linalg.vector_norm(m.parametrizations.weight.original)
    shape = (2, 1, 4, 6, 6) if kind == "cine" else (2, 1, 8, 8)
    x = torch.randn(shape, dtype=torch.complex64)
    delta = (0.1 * torch.randn(shape, dtype=torch.complex64)).requires_grad_()
    opt = torch.optim.Adam([delta], lr=0.05)
    worst = 0.0
    for _ in range(40):
        ratio = torch.linalg.vector_norm(den.residual(x + delta) - den.residual(x)) / torch.linalg.vector_norm(delta)
        worst = max(worst, float(ratio.detach()))
        opt.zero_grad()
        (-ratio).backward()
        opt.step()
    assert 0 < worst <= 0.9 + 1e-5
    with torch.no_grad():
        y = den(x)
    rebuilt = den.inverse(y, None, InverseOptions(iters=300, tol=1e-7))
    assert rel(rebuilt, x) < 1e-4


def test_inverse_tolerance_freezes_converged_elements():
    """An element that meets the tolerance keeps that iterate while others iterate on (what a GPU
    run does, where the loop never ends early): its result is the one it gets alone."""
    g = torch.Generator().manual_seed(5)
    y = torch.randn(2, 6, dtype=torch.complex128, generator=g)
    rates = torch.tensor([0.1, 0.9], dtype=torch.float64).reshape(2, 1)
    opts = InverseOptions(iters=60, tol=1e-4)
    both = invert_residual(lambda v: rates * v.roll(1, -1), y, opts)
    alone = invert_residual(lambda v: 0.1 * v.roll(1, -1), y[:1], opts)
    assert torch.equal(both[:1], alone)
    exact = invert_residual(lambda v: 0.1 * v.roll(1, -1), y[:1], InverseOptions(iters=200, tol=0.0))
    assert 0 < rel(both[:1], exact) < 1e-4
    b = torch.randn(2, 4, dtype=torch.complex128, generator=g)
    mats = torch.stack([torch.eye(4, dtype=torch.complex128), 3 * torch.eye(4, dtype=torch.complex128)])
    mats[1, 0, 1] = mats[1, 1, 0] = 0.5
    apply = lambda v: (mats @ v.unsqueeze(-1)).squeeze(-1)  # noqa: E731
    x = solve_hpd(apply, b, torch.zeros_like(b), InverseOptions(iters=10, tol=1e-3))
    assert torch.linalg.vector_norm(apply(x) - b, dim=1).max() / b.norm(dim=1).min() < 1e-3
