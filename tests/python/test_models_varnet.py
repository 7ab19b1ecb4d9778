"""E2E-VarNet: shapes for 2D/3D/cine, the ACS region, normalized learned maps, gradients into
the sensitivity network, the four strategies (checkpoint and invertible equal e2e; GLEAM keeps
the sensitivity network in module 0 and hands later modules detached maps), checkpoints of the
architecture, and clear errors."""

from __future__ import annotations

import warnings

import pytest
import torch

from gleam_core.models import ModelConfig, Problem, UnrolledNet
from gleam_core.models.sensitivity import SensitivityNet, acs_mask
from gleam_core.models.varnet import VarNet, unpack
from gleam_core.train.losses import complex_l1
from gleam_core.train.optim import OptimizerConfig
from gleam_core.train.schema import from_dict
from gleam_core.train.strategies import STRATEGIES

pytestmark = pytest.mark.usefixtures("single_thread")

KINDS = {  # kind: (spatial, compact mask shape, fft_ndim)
    "2d": ((12, 10), (1, 1, 1, 10), 2),
    "3d": ((4, 8, 8), (1, 1, 1, 8, 8), 3),
    "cine": ((3, 8, 8), (2, 1, 3, 1, 8), 2),
}


def config(**varnet) -> ModelConfig:
    return from_dict(ModelConfig, {"type": "varnet", "unrolls": varnet.pop("unrolls", 2),
                                   "varnet": {"chans": 4, "pools": 2, "sens_chans": 4, "sens_pools": 1, **varnet}})


def problem(kind: str, dtype=torch.complex64, seed: int = 0, batch: int = 2, coils: int = 3):
    spatial, mask_shape, fft_ndim = KINDS[kind]
    g = torch.Generator().manual_seed(seed)
    kspace = torch.randn(batch, coils, *spatial, dtype=dtype, generator=g)
    maps = torch.randn(batch, coils, 1, *spatial, dtype=dtype, generator=g)
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    mask = (torch.rand(*mask_shape, generator=g) < 0.4).to(real)
    c = mask.shape[-1] // 2
    mask[..., c - 1:c + 2] = 1  # ACS lines around the center
    target = torch.randn(batch, 1, *spatial, dtype=dtype, generator=g)
    return Problem.from_data(kspace, maps, mask, fft_ndim), target


@pytest.mark.parametrize("kind", list(KINDS))
def test_shapes_and_gradients_reach_every_parameter(kind):
    torch.manual_seed(0)
    net = UnrolledNet.build(config(), kind)
    assert isinstance(net, VarNet)
    p, target = problem(kind)
    out = net(p)
    assert out.shape == target.shape and out.dtype == target.dtype
    complex_l1(out, target).backward()
    # The first cascade's soft DC is zero (it starts from the masked k-space itself), so its
    # weight's gradient is too; every other parameter gets a nonzero one.
    first_dc = "unrolls.0.layers.1.dc_weight"
    missing = [n for n, prm in net.named_parameters()
               if prm.grad is None or (n != first_dc and not prm.grad.abs().sum() > 0)]
    assert not missing
    assert any(n.startswith("unrolls.0.layers.0.net") for n, _ in net.named_parameters())  # the sensitivity net


def test_unet_conv_kinds():
    assert config().conv_kind("cine") == "2+1d"
    assert config(conv="3d").conv_kind("cine") == "3d"
    assert config().conv_kind("3d") == "3d"
    with pytest.raises(ValueError, match="varnet.conv='3d' needs 3 spatial axes"):
        config(conv="3d").check("2d")
    with pytest.raises(ValueError, match="share_weights is not supported"):
        from_dict(ModelConfig, {"type": "varnet", "share_weights": True}).check("2d")


def test_acs_region_1d_2d_and_cine():
    line = torch.tensor([1, 0, 1, 1, 1, 1, 0, 1, 1, 0], dtype=torch.float32)  # center index 5
    got = acs_mask(line.reshape(1, 1, 1, 10), 2, 2).flatten()
    assert got.tolist() == [0, 0, 1, 1, 1, 1, 0, 0, 0, 0]
    box = torch.zeros(1, 1, 7, 8)
    box[..., 2:5, 3:6] = 1
    box[..., 0, :] = 1  # a sampled row that does not touch the center box
    got = acs_mask(box, 2, 2)
    expected = torch.zeros_like(box)
    expected[..., 2:5, 3:6] = 1
    assert torch.equal(got, expected)
    frames = torch.zeros(2, 1, 3, 1, 8)
    frames[..., 3:6] = 1
    frames[0, :, 1, :, 3] = 0  # frame 1 of element 0 misses one ACS line
    got = acs_mask(frames, 3, 2)
    assert got.shape == (2, 1, 1, 1, 8)
    assert got[0].flatten().tolist() == [0, 0, 0, 0, 1, 1, 0, 0]
    assert got[1].flatten().tolist() == [0, 0, 0, 1, 1, 1, 0, 0]


def test_learned_maps_are_normalized_by_rss():
    torch.manual_seed(1)
    net = SensitivityNet("2d", 2, sets=2, chans=4, pools=1)
    p, _ = problem("2d")
    maps = net(p.kspace, p.op.mask)
    assert maps.shape == (2, 3, 2, 12, 10)
    energy = maps.abs().square().sum((1, 2))
    assert torch.allclose(energy, torch.ones_like(energy), atol=1e-5)


def _strategy_grads(name: str, **options):
    torch.manual_seed(3)
    net = UnrolledNet.build(config(unrolls=4), "2d").double()
    p, target = problem("2d", torch.complex128, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        strategy = STRATEGIES[name](net, complex_l1, OptimizerConfig(), 1, "cpu", **options)
    complex_l1(strategy.forward_train(p), target).backward()
    return torch.cat([prm.grad.flatten() for prm in net.parameters()]), strategy


@pytest.mark.parametrize("name, options", [("checkpoint", {"segment": 1}), ("checkpoint", {"segment": 2}),
                                           ("invertible", {})])
def test_whole_network_strategies_match_e2e(name, options):
    ref, _ = _strategy_grads("e2e")
    got, strategy = _strategy_grads(name, **options)
    assert ref.abs().max() > 0
    assert float((got - ref).norm() / ref.norm()) < 1e-10
    if name == "invertible":
        assert strategy.anchor_every == 1  # no reliable inverse: every cascade input is kept
        assert float(strategy.extra()["inversion_error"]) == 0


def test_invertible_warns_about_anchoring_every_cascade():
    net = UnrolledNet.build(config(), "2d")
    with pytest.warns(UserWarning, match="varnet cascades have no reliable inverse"):
        STRATEGIES["invertible"](net, complex_l1, OptimizerConfig(), 1, "cpu")


def test_invertible_refuses_unanchored_varnet_cascades():
    """Cascades without a usable inverse would be rebuilt wrongly, and unmeasured: refused."""
    net = UnrolledNet.build(config(), "2d")
    with pytest.raises(ValueError, match="invertible.anchor_every: got 2, but varnet cascades have no usable inverse"):
        STRATEGIES["invertible"](net, complex_l1, OptimizerConfig(), 1, "cpu", anchor_every=2)


def test_gleam_sensitivity_net_in_module_zero_and_maps_detached():
    torch.manual_seed(5)
    net = UnrolledNet.build(config(unrolls=4), "2d")
    p, target = problem("2d", seed=6)
    gleam = STRATEGIES["gleam"](net, complex_l1, OptimizerConfig(), 4, "cpu", modules=2)
    sens = {id(prm) for prm in net.unrolls[0].layers[0].parameters()}
    owned = [{id(prm) for prm in unit.chain.parameters()} for unit in gleam.units]
    assert sens <= owned[0] and not sens & owned[1]
    # Module 1's input state: its maps part is a constant (no graph back into module 0).
    state = gleam.units[0].forward(net.start(p), p)
    handed = gleam.units[1].forward(state, p)
    assert unpack(handed)[1].grad_fn is not None  # sliced from the state, which module 1 computed ...
    complex_l1(net.readout(handed, p), target).backward()
    assert all(prm.grad is None for prm in net.unrolls[0].parameters())  # ... but nothing reaches module 0
    before = [prm.detach().clone() for prm in net.unrolls[0].layers[0].parameters()]
    result = gleam.train_step(p, target)
    assert len(result.losses) == 2 and all(torch.isfinite(v) for v in result.losses)
    after = list(net.unrolls[0].layers[0].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before))  # module 0 trains the sensitivity net
    assert gleam.reconstruct(p).shape == target.shape


def test_description_round_trip():
    net = UnrolledNet.build(config(dc_weight=0.7), "cine")
    again = UnrolledNet.from_description(net.description())
    assert isinstance(again, VarNet) and again.config == net.config and again.kind == "cine"
    again.load_state_dict(net.state_dict())


def test_problem_without_kspace_is_refused():
    net = UnrolledNet.build(config(), "2d")
    p, _ = problem("2d")
    with pytest.raises(ValueError, match="needs the undersampled k-space"):
        net(Problem(p.op, p.ahy))


EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.filterwarnings("ignore:invertible:UserWarning")
@pytest.mark.parametrize("strategy, precision", [("e2e", "fp32"), ("checkpoint", "fp32"), ("invertible", "fp32"),
                                                 ("gleam", "fp32"), ("gleam", "bf16")])
def test_varnet_example_trains_with_every_strategy(tmp_path, capsys, strategy, precision):
    from gleam_core.cli.train import main as train_main
    out = tmp_path / strategy
    code = train_main(["--spec", str(EXAMPLES / "varnet.yaml"), "--set", f"output={out}",
                       "--set", f"strategy={strategy}", "--set", f"precision={precision}",
                       "--set", "schedule.iterations=2", "--set", "data.train.synthetic.shape=[32, 32]",
                       "--set", "data.val.synthetic.shape=[32, 32]", "--set", "data.val.synthetic.n=2",
                       "--set", "data.train.synthetic.n=2", "--set", "data.train.synthetic.coils=4",
                       "--set", "data.val.synthetic.coils=4", "--set", "logging.progress=false"])
    assert code == 0
    assert f"final validation ({strategy}, 2 iterations): PSNR" in capsys.readouterr().out
    assert (out / "checkpoints" / "iter_00000002.pt").exists()


@pytest.mark.parametrize("name", ["knee3d", "cine"])
def test_varnet_on_3d_and_cine_synthetic_items(name):
    """The 3D and cine examples' data through a (small) VarNet: 3D U-Nets, (2+1)D for cine."""
    from gleam_core.data import collate
    from gleam_core.train.datasets import build_dataset
    from gleam_core.train.evaluation import batch_problem
    from gleam_core.train.spec import load_spec

    spec = load_spec(EXAMPLES / f"{name}.yaml", [f"data.train={{synthetic: {{kind: {name}, n: 1}}}}",
                                                 f"data.val={{synthetic: {{kind: {name}, n: 1}}}}",
                                                 "model.type=varnet", "model.unrolls=1", "strategy=e2e",
                                                 "model.varnet={chans: 2, pools: 1, sens_chans: 2, sens_pools: 1}"])
    item = build_dataset(spec.data.train, spec.data.kind, spec.masks, spec.seed, train=True, key="data.train")[0]
    model = UnrolledNet.build(spec.model, spec.data.kind, int(item["maps"].shape[1]))
    problem, target = batch_problem(collate([item]), spec.data.kind, torch.device("cpu"))
    with torch.no_grad():
        out = model(problem)
    assert out.shape == target.shape and torch.isfinite(out).all()


def test_gleam_plan_plans_varnet(capsys):
    """gleam-plan on the VarNet example: every strategy's peak, and invertible timed like
    checkpoint (no usable inverse: every cascade anchored, none inverted)."""
    import json

    from gleam_core.cli.plan import main as plan_main
    code = plan_main(["--spec", str(EXAMPLES / "varnet.yaml"), "--set", "data.train.synthetic.shape=[32, 32]",
                      "--set", "model.unrolls=2", "--set", "gleam.modules=2", "--budget", "4GiB", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {c["strategy"] for c in out["candidates"]} == {"e2e", "checkpoint", "invertible", "gleam"}
    times = {(c["strategy"], c["segments"]): c["relative_time"] for c in out["candidates"]}
    assert times[("invertible", None)] < 2.0  # an inverse would cost about 30 forward passes
    assert all(c["peak_bytes"] > 0 for c in out["candidates"])
