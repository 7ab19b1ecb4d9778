"""The distributed trainer in this process on a one-rank gloo world: it trains exactly like the
single-process gleam strategy, and the optional DGL-style replay buffer makes its extra,
deterministic updates (and stays bounded)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from distributed_cases import assert_same_training_state, reference, spec_overrides, state
from gleam_core.train.distributed.trainer import DistributedTrainer
from gleam_core.train.distributed.world import Layout, init_world, shutdown
from train_cases import tiny_spec

pytestmark = pytest.mark.usefixtures("single_thread")


def run_one_rank(tmp_path, name: str, *overrides: str, iterations: int = 8) -> DistributedTrainer:
    spec = tiny_spec(tmp_path / name, *spec_overrides(*overrides), iterations=iterations)
    world = init_world(Layout(1, 1, spec.gleam.modules), 0, 0, "cpu", spec.distributed, store=dist.HashStore())
    try:
        trainer = DistributedTrainer(spec, world)
        trainer.run()
    finally:
        shutdown(world)
    return trainer


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_one_rank_equals_single_process(tmp_path, precision):
    """The stage is the single-process pipeline (fp16: with its per-module gradient scalers)."""
    trainer = run_one_rank(tmp_path, "dist", f"precision={precision}")
    assert trainer.iteration == 8 and trainer.stage.modules == [0, 1]
    assert_same_training_state(state(tmp_path / "dist" / "run"),
                               state(reference(tmp_path, "single", f"precision={precision}", iterations=8)))


def test_replay_buffer_adds_deterministic_bounded_updates(tmp_path):
    plain = state(run_one_rank(tmp_path, "plain").run_dir)
    runs = [run_one_rank(tmp_path, f"replay{i}", "distributed.replay.enabled=true", "distributed.replay.size=3",
                         "distributed.replay.steps=2") for i in range(2)]
    for trainer in runs:
        for buf in trainer.stage.replay:
            assert len(buf.items) == 3 and buf.items.maxlen == 3       # bounded
            assert buf.replayed == 2 * 8                               # steps x iterations
        assert [u.updater.scheduler.last_epoch for u in trainer.stage.units] == [8, 8]  # schedule: fresh only
    a, b = (state(t.run_dir) for t in runs)
    assert_same_training_state(a, b)                                   # deterministic
    assert any(not torch.equal(a["model"][k], plain["model"][k]) for k in a["model"])  # and it did something
