"""The trainer keeps the checkpoint of the best validation PSNR as checkpoints/best.pt (written
atomically, replaced only by a better one, carried through --resume), and synthetic training
data can draw fresh volumes every epoch."""

from __future__ import annotations

import pytest
import torch

from gleam_core.data import SyntheticDataset
from gleam_core.train.checkpoints import best_checkpoint, load_checkpoint, resolve_checkpoint
from gleam_core.train.trainer import Trainer
from train_cases import tiny_spec

pytestmark = pytest.mark.usefixtures("single_thread")


def test_best_checkpoint_follows_the_best_validation(tmp_path, monkeypatch, capsys):
    spec = tiny_spec(tmp_path, "schedule.val_every=2", "schedule.checkpoint_every=2", "schedule.keep_last=8",
                     iterations=8)
    scores = iter([10.0, 12.0, 11.0, 9.0])
    real_validate = Trainer.validate

    def validate(self):
        result = real_validate(self)
        result["psnr"] = next(scores)       # a curve that peaks at iteration 4
        self.last_val = result
        return result

    monkeypatch.setattr(Trainer, "validate", validate)
    trainer = Trainer(spec)
    trainer.run()
    best = best_checkpoint(tmp_path / "run")
    state = load_checkpoint(best)
    assert state["iteration"] == 4 and state["best"] == {"metric": "psnr", "value": 12.0, "iteration": 4}
    assert resolve_checkpoint(tmp_path / "run") == best          # what gleam-eval and gleam-recon read
    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "iter_00000004.pt")
    for key, value in saved["model"].items():                     # the weights of iteration 4
        torch.testing.assert_close(state["model"][key], value)
    printed = capsys.readouterr().out
    assert "best validation PSNR 12.00 dB at iteration 4" in printed
    assert "PSNR (complex, mean over slices)" in printed
    assert [p.name for p in best.parent.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_fresh_synthetic_volumes_every_epoch():
    kw = {"shape": (32, 32), "coils": 2, "slices": 2}
    fresh = SyntheticDataset("knee2d", 4, seed=0, fresh=True, **kw)
    later = SyntheticDataset("knee2d", 8, seed=0, **kw)          # the same generator, volumes 0..3
    first = [fresh[i]["target"] for i in range(4)]
    fresh.set_epoch(1)                                            # epoch 1: volumes 2 and 3
    for i in range(4):
        torch.testing.assert_close(fresh[i]["target"], later[4 + i]["target"])
        assert not torch.allclose(fresh[i]["target"], first[i])
    fresh.set_epoch(0)
    torch.testing.assert_close(fresh[1]["target"], first[1])     # reproducible per epoch
    with pytest.raises(ValueError, match="fresh"):
        SyntheticDataset("knee2d", 4, fixed_masks=True, fresh=True, **kw)
