"""Kill-and-resume: a run killed (SIGKILL) after a checkpoint and resumed with --resume ends
with exactly the weights of an uninterrupted run; an interrupt between steps saves a
checkpoint; a NaN loss stops the run and leaves the last good checkpoint intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from gleam_core.train.checkpoints import check_losses_finite, latest_checkpoint, list_checkpoints, load_checkpoint
from gleam_core.train.schema import SpecError, to_dict
from gleam_core.train import Trainer, TrainingDiverged
from train_cases import tiny_spec

pytestmark = pytest.mark.usefixtures("single_thread")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}


def _write_spec(tmp_path, name: str, **kw) -> str:
    spec = tiny_spec(tmp_path / name, "strategy=gleam", "threads=1", "schedule.checkpoint_every=2",
                     "schedule.keep_last=50", "logging.tensorboard=false", **kw)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(to_dict(spec)))
    return str(path)


def _train(spec: str, *extra: str, wait: bool = True) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "gleam_core.cli.train", "--spec", spec, *extra], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
    return proc


def _weights(run) -> dict:
    return load_checkpoint(latest_checkpoint(run))["model"]


def test_killed_run_resumes_to_identical_weights(tmp_path):
    iterations = 24
    full_spec = _write_spec(tmp_path, "full", iterations=iterations)
    _train(full_spec)
    killed_spec = _write_spec(tmp_path, "killed", iterations=iterations)
    run = tmp_path / "killed" / "run"
    proc = _train(killed_spec, wait=False)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        found = list_checkpoints(run)
        if found and load_checkpoint(found[-1])["iteration"] >= 6:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(latest_checkpoint(run))["iteration"]
    assert 6 <= killed_at < iterations
    _train(killed_spec, "--resume")
    a, b = _weights(tmp_path / "full" / "run"), _weights(run)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the resumed run's records read like the uninterrupted run's
    lines = [yaml.safe_load(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in lines if r["split"] == "train"] == list(range(4, iterations + 1, 4))


def test_interrupt_between_steps_saves_and_resumes(tmp_path, monkeypatch):
    spec = tiny_spec(tmp_path, "strategy=e2e", "schedule.checkpoint_every=100", iterations=10)
    reference = Trainer(tiny_spec(tmp_path / "ref", "strategy=e2e", iterations=10))
    reference.run()
    trainer = Trainer(spec)
    original = trainer.validate

    def interrupt_at_5() -> dict:
        if trainer.iteration == 5:
            raise KeyboardInterrupt
        return original()
    monkeypatch.setattr(trainer, "validate", interrupt_at_5)
    monkeypatch.setattr(trainer.spec.schedule, "val_every", 5)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert load_checkpoint(latest_checkpoint(tmp_path / "run"))["iteration"] == 5
    resumed = Trainer(tiny_spec(tmp_path, "strategy=e2e", "schedule.checkpoint_every=100", iterations=10),
                      resume=True)
    assert resumed.iteration == 5
    resumed.run()
    for a, b in zip(reference.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_ctrl_c_during_a_step_finishes_it_saves_and_resumes(tmp_path, monkeypatch):
    reference = Trainer(tiny_spec(tmp_path / "ref", "strategy=gleam", iterations=8))
    reference.run()
    trainer = Trainer(tiny_spec(tmp_path, "strategy=gleam", "schedule.checkpoint_every=100", iterations=8))
    step = trainer.strategy.train_step

    def signalled(problem, target):
        if trainer.iteration == 3:  # a real SIGINT in the middle of the fourth step
            os.kill(os.getpid(), signal.SIGINT)
        return step(problem, target)
    monkeypatch.setattr(trainer.strategy, "train_step", signalled)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    assert load_checkpoint(latest_checkpoint(tmp_path / "run"))["iteration"] == 4
    resumed = Trainer(tiny_spec(tmp_path, "strategy=gleam", "schedule.checkpoint_every=100", iterations=8),
                      resume=True)
    resumed.run()
    for a, b in zip(reference.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    spec = tiny_spec(tmp_path, "strategy=gleam", "schedule.checkpoint_every=4", iterations=12)
    trainer = Trainer(spec)
    step = trainer.strategy.train_step

    def poisoned(problem, target):
        result = step(problem, target)
        if trainer.iteration == 6:
            result.losses[1] = torch.tensor(float("nan"))
        return result
    monkeypatch.setattr(trainer.strategy, "train_step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"iteration 7: the loss of module 1 is nan.*iteration 4"):
        trainer.run()
    run = tmp_path / "run"
    assert [p.name for p in list_checkpoints(run)] == ["iter_00000004.pt"]
    state = load_checkpoint(latest_checkpoint(run))
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_divergence_message_names_the_stage_of_a_distributed_rank(tmp_path):
    # A stage holds modules 2 and 3 of the network; the second of its losses is infinite.
    with pytest.raises(TrainingDiverged, match=r"iteration 9: the loss of module 3 on rank 1 \(stage 1\) is inf"
                                                r".*no checkpoint was written yet"):
        check_losses_finite([0.5, float("inf")], [2, 3], 8, None, tmp_path, where="rank 1 (stage 1)")
    check_losses_finite([0.5, 0.25], [2, 3], 8, None, tmp_path, where="rank 1 (stage 1)")  # finite: no error


def test_resume_refuses_a_different_model(tmp_path):
    Trainer(tiny_spec(tmp_path, iterations=4)).run()
    with pytest.raises(SpecError, match="'model'.*differs from the run being resumed"):
        Trainer(tiny_spec(tmp_path, "model.unrolls=4", iterations=8), resume=True)
    longer = Trainer(tiny_spec(tmp_path, iterations=8), resume=True)  # a longer schedule is fine
    assert longer.iteration == 4


def test_fresh_run_drops_records_left_by_a_failed_attempt(tmp_path):
    """A run that died before its first checkpoint leaves metric records; the next fresh run
    in that directory starts them over instead of appending to them."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"split": "train", "iteration": 1, "loss": [123.0]}\n')
    Trainer(tiny_spec(tmp_path, "logging.every=1", iterations=2)).run()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["iteration"] for r in train] == [1, 2] and all(r["loss"] != [123.0] for r in train)


def test_nonfinite_weights_are_never_checkpointed(tmp_path, monkeypatch):
    """A finite loss over NaN gradients leaves NaN weights: the next checkpoint is refused and
    the last good one stays the latest."""
    spec = tiny_spec(tmp_path, "strategy=gleam", "schedule.checkpoint_every=4", iterations=12)
    trainer = Trainer(spec)
    step = trainer.strategy.train_step

    def poisoned(problem, target):
        result = step(problem, target)
        if trainer.iteration == 7:  # the step before a checkpoint: its loss was still finite
            with torch.no_grad():
                next(trainer.model.parameters()).fill_(float("nan"))
        return result
    monkeypatch.setattr(trainer.strategy, "train_step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"iteration 8: non-finite weights.*iter_00000004.pt"):
        trainer.run()
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["iter_00000004.pt"]
