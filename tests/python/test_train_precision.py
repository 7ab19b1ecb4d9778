"""Mixed precision (``precision: fp32 | bf16 | fp16``): the denoisers' convolutions run in the
lower precision under autocast while data consistency and the ops stay complex64, with explicit
casts at the denoiser's boundary; activation memory falls; fp16 keeps one gradient scaler per
optimizer (per GLEAM module), skips only the overflowing module's step, saves the scalers in
checkpoints (bitwise resume) and adds no host read per step; invertible refuses it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gleam_core.models import UnrolledNet
from gleam_core.models.dc import CGDC, GradientStepDC
from gleam_core.train import Trainer
from gleam_core.train.losses import complex_l1
from gleam_core.train.optim import OptimizerConfig
from gleam_core.train.schema import SpecError
from gleam_core.train.strategies import STRATEGIES, Gleam
from host_reads import counting_reads
from ops_cases import CASES
from train_cases import problem_for, tiny, tiny_spec

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("model", ["pgd", "modl"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_convolutions_in_low_precision_data_consistency_in_complex64(model, dtype):
    torch.manual_seed(0)
    net = UnrolledNet(tiny(model, unrolls=2), "2d")
    net.set_compute_dtype(dtype)
    problem, target = problem_for(CASES[0], torch.complex64)
    seen: dict[str, set] = {"conv": set(), "conv_out": set(), "dc": set()}
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            m.register_forward_pre_hook(lambda mod, args: seen["conv"].add(args[0].dtype))
            m.register_forward_hook(lambda mod, args, out: seen["conv_out"].add(out.dtype))
        if isinstance(m, (GradientStepDC, CGDC)):
            m.register_forward_pre_hook(lambda mod, args: seen["dc"].add(args[0].dtype))
    out = net(problem)
    assert seen == {"conv": {dtype}, "conv_out": {dtype}, "dc": {torch.complex64}}
    assert out.dtype == torch.complex64
    complex_l1(out, target).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in net.parameters() if p.requires_grad)
    # not the fp32 network: the conv arithmetic changed, within the low precision's rounding
    net.set_compute_dtype(None)
    with torch.no_grad():
        ref = net(problem)
    assert not torch.equal(out.detach(), ref)
    assert (out.detach() - ref).abs().max() <= 0.05 * ref.abs().max()


def test_bad_compute_dtype_is_refused():
    with pytest.raises(ValueError, match="compute dtype must be None, torch.bfloat16 or torch.float16"):
        UnrolledNet(tiny("pgd"), "2d").set_compute_dtype(torch.float64)


@pytest.mark.parametrize("strategy", ["e2e", "checkpoint", "gleam"])
def test_bf16_lowers_activation_memory_by_a_third(tmp_path, strategy):
    """The saved-tensor meter's step peak (activations, deduplicated), bf16 against fp32."""
    peaks = {}
    for precision in ("fp32", "bf16"):
        trainer = Trainer(tiny_spec(tmp_path / precision, f"strategy={strategy}", f"precision={precision}",
                                    "logging.tensorboard=false", "logging.images=false", iterations=2))
        trainer.run()
        peaks[precision] = trainer.last_stats["peak_bytes"]
    assert peaks["bf16"] <= 0.65 * peaks["fp32"], peaks


def test_fp16_one_scaler_per_module_skips_only_the_overflowing_module():
    torch.manual_seed(0)
    net = UnrolledNet(tiny("pgd", unrolls=4), "2d")
    net.set_compute_dtype(torch.float16)
    g = Gleam(net, complex_l1, OptimizerConfig(), 10, "cpu", modules=2, scale_grads=True)
    assert g.units[0].updater.scaler is not None and g.units[0].updater.scaler is not g.units[1].updater.scaler
    # a scale that makes module 1's fp16 gradients overflow
    g.units[1].updater.scaler = torch.amp.GradScaler("cpu", init_scale=1e30)
    scalers = [u.updater.scaler for u in g.units]
    before = [[p.detach().clone() for p in u.chain.parameters()] for u in g.units]
    problem, target = problem_for(CASES[0], torch.complex64)
    losses = g.train_step(problem, target).resolve()["loss"]
    assert all(torch.isfinite(torch.tensor(losses)))  # the losses are fp32: an overflow is no divergence
    moved = [any(not torch.equal(a, p) for a, p in zip(old, u.chain.parameters())) for old, u in zip(before, g.units)]
    assert moved == [True, False]
    assert scalers[0].get_scale() == 2.0 ** 16 and scalers[1].get_scale() == pytest.approx(0.5e30, rel=1e-6)


def _spec(tmp_path, name, *overrides, iterations):
    return tiny_spec(tmp_path / name, "strategy=gleam", "precision=fp16", "logging.tensorboard=false",
                     "logging.images=false", *overrides, iterations=iterations)


def test_fp16_scalers_are_checkpointed_and_resume_bitwise(tmp_path):
    full = Trainer(_spec(tmp_path, "full", iterations=8))
    full.run()
    Trainer(_spec(tmp_path, "cut", iterations=4)).run()
    resumed = Trainer(_spec(tmp_path, "cut", iterations=8), resume=True)
    assert [u.updater.scaler.state_dict() for u in resumed.strategy.units] == \
        [{**u.updater.scaler.state_dict(), "_growth_tracker": u.updater.scaler.state_dict()["_growth_tracker"] - 4}
         for u in full.strategy.units]  # the same scales, 4 steps fewer since the last growth
    resumed.run()
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_fp16_adds_no_host_read_per_step(tmp_path):
    reads = {}
    for n in (8, 24):
        trainer = Trainer(_spec(tmp_path, f"n{n}", "logging.every=4", f"schedule.val_every={n}",
                                f"schedule.checkpoint_every={n}", iterations=n))
        with counting_reads() as counts:
            trainer.run()
        reads[n] = counts
    extra = reads[24] - reads[8]
    assert sum(extra.values()) <= (24 - 8) // 4, dict(extra)


def test_precision_in_the_spec(tmp_path):
    with pytest.raises(SpecError) as err:
        tiny_spec(tmp_path, "strategy=invertible", "precision=bf16")
    assert err.value.key == "precision" and "Allowed with invertible: fp32" in str(err.value)
    with pytest.raises(SpecError) as err:
        tiny_spec(tmp_path, "precision=fp8")
    assert err.value.key == "precision"
    assert tiny_spec(tmp_path).precision == "fp32"
    with pytest.raises(SpecError, match="'precision'.*differs from the run being resumed"):
        Trainer(tiny_spec(tmp_path, "logging.tensorboard=false", iterations=2)).run()
        Trainer(tiny_spec(tmp_path, "precision=bf16", iterations=4), resume=True)


def test_strategies_accept_scale_grads():
    for name in ("e2e", "checkpoint"):
        net = UnrolledNet(tiny("pgd"), "2d")
        assert STRATEGIES[name](net, complex_l1, OptimizerConfig(), 1, "cpu", scale_grads=True).updater.scaler
