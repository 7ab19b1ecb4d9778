"""The one GLEAM pipeline and the sync-free training loop.

- Device-to-host reads (``item``, ``float()``, ``bool()``, ``int()``, ``tolist()``, ``numpy()``,
  synchronize), counted by patching and attributed to the project file that made them: over N
  training steps the loop, strategies, models and ops make at most N / logging.every plus a
  constant.
- The trainer's weights and logged losses are bitwise those of the algorithm it replaced (a
  reference written here from the previous code path: per step, every module in order, each
  on its predecessor's detached output, read back after every step), for every lane layout,
  overlap and queue depth on the CPU.
- The hand-off queue between two streams orders its events as ``gleam.queue_depth`` says
  (recorded by stand-in lanes, no GPU needed); bad depths are refused.
- ``Problem.to`` keeps the operator's settings.
- With a GPU: two CUDA devices (or two streams on one) train like the CPU, at queue depth 2,
  with no more reads per interval than on the CPU.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from gleam_core.models import Problem, UnrolledNet
from gleam_core.ops import SenseOp
from gleam_core.train import Trainer, TrainingDiverged
from gleam_core.train.evaluation import batch_problem
from gleam_core.train.losses import complex_l1
from gleam_core.train.optim import OptimizerConfig, Updater
from gleam_core.train.strategies import Gleam, Lane, LaneLink, resolve_steps
from host_reads import counting_reads
from ops_cases import CASES, make
from train_cases import problem_for, tiny, tiny_spec

pytestmark = pytest.mark.usefixtures("single_thread")

def _spec(tmp_path, name: str, *overrides: str, iterations: int):
    return tiny_spec(tmp_path / name, "threads=1", "logging.tensorboard=false", "logging.images=false",
                     f"schedule.val_every={iterations}", f"schedule.checkpoint_every={iterations}",
                     *overrides, iterations=iterations)


def _reads(tmp_path, name: str, *overrides: str, iterations: int) -> Counter:
    trainer = Trainer(_spec(tmp_path, name, *overrides, iterations=iterations))
    with counting_reads() as counts:
        trainer.run()
    return counts


@pytest.mark.parametrize("overrides", [("strategy=gleam",), ("strategy=gleam", "gleam.devices=[cpu,cpu]"),
                                       ("strategy=e2e",), ("strategy=checkpoint",)])
def test_reads_per_logging_interval(tmp_path, overrides):
    """Training 16 more steps (4 more logging intervals of 4) costs at most 4 more reads; the
    run's end (validation, checkpoint, summary) is the constant both runs share. (PGD: MoDL's
    CG checks its lam on the host only for CPU tensors, where that read is no device sync.)"""
    every = 4
    short = _reads(tmp_path, "short", *overrides, f"logging.every={every}", iterations=8)
    long = _reads(tmp_path, "long", *overrides, f"logging.every={every}", iterations=24)
    extra = long - short
    assert sum(extra.values()) <= (24 - 8) // every, f"reads beyond one per interval: {dict(extra)}"
    assert sum(long.values()) <= 24 // every + sum(short.values())
    assert long["train/strategies/base.py"] == 24 // every  # the one read of each interval, seen


def test_the_counter_sees_a_read_per_step_loop(tmp_path):
    """The counter is not blind: the previous loop's per-step read (StepResult.resolve after
    every step) shows up once per step."""
    trainer = Trainer(_spec(tmp_path, "r", "strategy=gleam", iterations=6))
    with counting_reads() as counts:
        for _ in range(6):
            problem, target = batch_problem(next(trainer.stream), "2d", trainer.device)
            trainer.strategy.train_step(problem, target).resolve()
    assert counts["train/strategies/base.py"] == 6


def _reference_weights(spec) -> tuple[dict, dict[int, list[float]]]:
    """The algorithm of the previous code path, written out: for every batch, every module in
    order runs on the detached output of the previous one and steps its own optimizer on its
    local loss (whole-network strategies: one module); losses are read after every step.
    Returns the final weights and the losses of every step."""
    ref = Trainer(spec)
    modules = ref.spec.gleam.modules if spec.strategy == "gleam" else 1
    chains = ref.model.split(modules)
    updaters = [Updater(c.parameters(), spec.optimizer, ref.total) for c in chains]
    losses = {}
    for it in range(1, ref.total + 1):
        problem, target = batch_problem(next(ref.stream), spec.data.kind, ref.device)
        x, step = problem.ahy, []
        for chain, updater in zip(chains, updaters):
            out = chain(problem, x.detach())
            updater.zero_grad()
            loss = ref.loss_fn(out, target)
            loss.backward()
            updater.step()
            x = out.detach()
            step.append(float(loss.detach()))
        losses[it] = step
    return {k: v.clone() for k, v in ref.model.state_dict().items()}, losses


@pytest.mark.parametrize("overrides", [("strategy=e2e",),
                                       ("strategy=gleam",),
                                       ("strategy=gleam", "gleam.overlap=true"),
                                       ("strategy=gleam", "gleam.devices=[cpu,cpu]"),
                                       ("strategy=gleam", "gleam.devices=[cpu,cpu]", "gleam.queue_depth=3")])
def test_weights_and_losses_bitwise_those_of_the_previous_loop(tmp_path, overrides):
    iterations = 10
    expected, expected_losses = _reference_weights(_spec(tmp_path, "ref", *overrides, iterations=iterations))
    spec = _spec(tmp_path, "run", *overrides, "logging.every=3", iterations=iterations)
    trainer = Trainer(spec)
    trainer.run()
    got = trainer.model.state_dict()
    assert got.keys() == expected.keys()
    for k in got:
        assert torch.equal(got[k], expected[k]), k
    records = [json.loads(line) for line in (Path(spec.output) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["iteration"] for r in train] == [3, 6, 9, 10]
    for r in train:
        assert r["loss"] == expected_losses[r["iteration"]]


def test_a_nan_inside_an_interval_names_its_step(tmp_path):
    """A NaN in the middle of a logging interval is found when the interval is read back, named
    by its own iteration and module, and stops the run before the next checkpoint."""
    spec = _spec(tmp_path, "nan", "strategy=gleam", "logging.every=5", iterations=10)
    spec.schedule.checkpoint_every = 4
    trainer = Trainer(spec)
    step = trainer.strategy.train_step

    def poisoned(problem, target):
        result = step(problem, target)
        if trainer.iteration == 5:  # step 6, between the checkpoint of 4 and the logging of 10
            result.losses[0] = result.losses[0] * float("inf")
        return result
    trainer.strategy.train_step = poisoned
    with pytest.raises(TrainingDiverged, match=r"iteration 6: the loss of module 0 is inf.*iteration 4"):
        trainer.run()
    assert trainer.saved_iteration == 4


def test_problem_to_keeps_the_operator_settings():
    case = next(c for c in CASES if c.fft_ndim == 2)
    _, maps, y, mask = make(case, torch.complex64, seed=1)
    for decouple in (True, False):
        op = SenseOp(maps, mask, fft_ndim=2, coil_chunk=3, decouple=decouple)
        problem = Problem(op, op.adjoint(y))
        moved = problem.to("cpu", torch.complex128)  # a new operator, as on another device
        assert moved.op.coil_chunk == 3 and moved.op.fft_ndim == 2
        assert moved.op.normal_dims == op.normal_dims and moved.op.mask.shape == op.mask.shape
        torch.testing.assert_close(moved.op.normal(moved.ahy).to(torch.complex64), op.normal(problem.ahy),
                                   rtol=1e-5, atol=1e-5)
    assert SenseOp(maps, mask, fft_ndim=2, decouple=True).normal_dims != \
        SenseOp(maps, mask, fft_ndim=2, decouple=False).normal_dims, "the case must have a decouplable axis"


@pytest.mark.parametrize("depth", [0, -1, 1.5, None])
def test_bad_queue_depth_is_refused(depth):
    lane = Lane(torch.device("cpu"))
    with pytest.raises(ValueError, match=r"gleam.queue_depth must be an int >= 1, got"):
        LaneLink(lane, lane, depth)


class _RecordingLane(Lane):
    """A lane that logs the GPU-side orderings a CUDA lane would make (no GPU needed)."""

    def __init__(self, name: str) -> None:
        self.device, self.stream, self.events, self.waits = torch.device("cpu"), name, 0, []

    def record(self):
        self.events += 1
        return (self.stream, self.events)

    def wait(self, event) -> None:
        self.waits.append(event)

    def context(self):
        return contextlib.nullcontext()


class _Handoff:
    """Stands for a CUDA tensor handed from one stream to another."""

    def __init__(self) -> None:
        self.used_on: list = []

    def record_stream(self, stream) -> None:
        self.used_on.append(stream)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_lane_link_bounds_the_queue_with_events(depth):
    """Between two streams: the receiver waits for each hand-off's producer, the hand-off's memory
    is marked as used on the receiver's stream, and the sender waits, before producing hand-off
    t, for the receiver to have taken hand-off t - depth: never more than ``depth`` ahead."""
    src, dst = _RecordingLane("src"), _RecordingLane("dst")
    link = LaneLink(src, dst, depth)
    handoffs = []
    for _ in range(6):
        link.reserve()
        handoffs.append(_Handoff())
        assert link.pass_on(handoffs[-1]) is handoffs[-1]
    assert dst.waits == [("src", t) for t in range(1, 7)]
    assert src.waits == [("dst", t) for t in range(1, 7 - depth)]
    assert all(h.used_on == ["dst"] for h in handoffs)


def _cuda_devices() -> list[str]:
    return ["cuda:0", "cuda:1"] if torch.cuda.device_count() >= 2 else ["cuda:0", "cuda:0"]


@pytest.mark.cuda
@pytest.mark.parametrize("depth", [1, 2])
def test_two_cuda_lanes_train_like_the_cpu(depth):
    """Two CUDA devices (or two streams on one GPU), overlapped: module 0 may run ``depth``
    batches ahead of module 1 on different batches each step; float64 weights and losses are
    the CPU's up to rounding."""
    torch.manual_seed(0)
    net = UnrolledNet(tiny("pgd", unrolls=4), "2d").double()
    cpu = Gleam(copy.deepcopy(net), complex_l1, OptimizerConfig(), 10, "cpu", modules=4)
    gpu = Gleam(net, complex_l1, OptimizerConfig(), 10, "cuda:0", modules=4, devices=_cuda_devices(),
                queue_depth=depth)
    assert gpu.overlap
    batches = [problem_for(CASES[0], torch.complex128, seed=s) for s in range(6)]
    cpu_steps = [cpu.train_step(p, t) for p, t in batches]
    gpu_steps = [gpu.train_step(p.to("cuda:0"), t.cuda()) for p, t in batches]  # no read in between
    gpu.join()
    for a, b in zip(resolve_steps(cpu_steps), resolve_steps(gpu_steps)):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-9)
    for a, b in zip(cpu.model.parameters(), gpu.model.parameters()):
        torch.testing.assert_close(b.detach().cpu(), a.detach(), rtol=1e-9, atol=1e-9)


@pytest.mark.cuda
def test_cuda_reads_per_logging_interval(tmp_path):
    devices = ",".join(_cuda_devices())
    overrides = ("strategy=gleam", "device=cuda:0", f"gleam.devices=[{devices}]", "gleam.queue_depth=2",
                 "logging.every=4")
    short = _reads(tmp_path, "short", *overrides, iterations=8)
    long = _reads(tmp_path, "long", *overrides, iterations=24)
    extra = long - short
    # per interval: one synchronize per device, then one read of all losses
    assert sum(extra.values()) <= (1 + len(set(_cuda_devices()))) * (24 - 8) // 4, dict(extra)
