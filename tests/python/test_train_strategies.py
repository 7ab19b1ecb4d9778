"""Every strategy trains a tiny network on synthetic data through the trainer and lowers the
validation loss; the run directory holds what docs/training.md promises."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from gleam_core.train.checkpoints import list_checkpoints, load_model
from gleam_core.train.trainer import Trainer
from train_cases import tiny_spec

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("strategy,model,extra", [
    ("e2e", "pgd", []), ("checkpoint", "pgd", []), ("invertible", "pgd", ["model.denoiser.lipschitz=0.9"]),
    ("gleam", "pgd", []), ("gleam", "modl", []),
    # MoDL's unbounded denoiser still inverts at this scale; the warning about it is expected.
    pytest.param("invertible", "modl", [], marks=pytest.mark.filterwarnings("ignore:invertible:UserWarning"))])
def test_strategy_lowers_validation_loss(tmp_path, strategy, model, extra):
    spec = tiny_spec(tmp_path, f"strategy={strategy}", f"model.type={model}", "model.lam=0.5",
                     "model.cg_iters=4", "invertible.iters=10", *extra)
    trainer = Trainer(spec)
    before = trainer.validate()["loss"]
    after = trainer.run()
    assert after["loss"] < 0.9 * before, (before, after)
    assert after["psnr"] > after["psnr_zf"]


def test_run_directory_contents(tmp_path):
    spec = tiny_spec(tmp_path, "strategy=gleam", "logging.format=jsonl", iterations=16)
    Trainer(spec).run()
    run = tmp_path / "run"
    saved = yaml.safe_load((run / "spec.yaml").read_text())
    assert saved["strategy"] == "gleam" and saved["model"]["unrolls"] == 2 and saved["optimizer"]["lr"] == 3e-3
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val"]
    assert [r["iteration"] for r in train] == [4, 8, 12, 16]
    assert all(len(r["loss"]) == 2 and len(r["time_s"]) == 2 and len(r["module_peak_bytes"]) == 2 for r in train)
    assert all(r["peak_bytes"] > 0 and r["lr"] == [3e-3, 3e-3] for r in train)
    assert len(val) == 1 and {"loss", "psnr", "ssim", "nrmse", "psnr_zf", "ssim_zf", "nrmse_zf"} <= set(val[0])
    assert (run / "figures" / "val_00000016.png").stat().st_size > 0
    assert any((run / "tensorboard").iterdir())
    assert [p.name for p in list_checkpoints(run)] == ["iter_00000008.pt", "iter_00000016.pt"]
    model, state = load_model(run)
    assert state["iteration"] == 16 and len(state["strategy_state"]["updaters"]) == 2
    assert not any(p.requires_grad and p.grad is not None for p in model.parameters())


def test_csv_records(tmp_path):
    spec = tiny_spec(tmp_path, "strategy=invertible", "model.denoiser.lipschitz=0.9", "logging.format=csv",
                     "logging.tensorboard=false", iterations=8)
    Trainer(spec).run()
    header, *rows = (tmp_path / "run" / "train.csv").read_text().splitlines()
    assert header.split(",")[:2] == ["iteration", "loss_0"] and "inversion_error" in header
    assert len(rows) == 2
    assert (tmp_path / "run" / "val.csv").exists() and not (tmp_path / "run" / "tensorboard").exists()


def test_existing_run_needs_resume(tmp_path):
    spec = tiny_spec(tmp_path, iterations=8)
    Trainer(spec).run()
    with pytest.raises(RuntimeError, match="already holds a run"):
        Trainer(spec)
    other = tiny_spec(tmp_path / "other", iterations=8)
    with pytest.raises(RuntimeError, match="no checkpoint"):
        Trainer(other, resume=True)


def test_reconstruct_uses_whole_chain(tmp_path):
    """The checkpointed model reconstructs like the strategy that trained it."""
    from gleam_core.data import collate
    from gleam_core.train.evaluation import batch_problem

    spec = tiny_spec(tmp_path, "strategy=gleam", iterations=8)
    trainer = Trainer(spec)
    trainer.run()
    model, _ = load_model(tmp_path / "run")
    problem, _ = batch_problem(collate([trainer.val_set[0]]), "2d", torch.device("cpu"))
    with torch.no_grad():
        torch.testing.assert_close(model(problem), trainer.strategy.reconstruct(problem))
