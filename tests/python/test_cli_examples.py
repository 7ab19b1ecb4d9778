"""The example specs validate with every strategy, and the quickstart trains end to end
(shortened) through the gleam-train entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gleam_core.cli.train import main as train_main
from gleam_core.train.spec import STRATEGY_NAMES, load_spec

pytestmark = pytest.mark.usefixtures("single_thread")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILE_EXAMPLES = ["knee2d", "brain2d", "knee3d", "cine"]


@pytest.mark.parametrize("name", FILE_EXAMPLES)
@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
def test_file_examples_validate(tmp_path, name, strategy):
    spec = load_spec(EXAMPLES / f"{name}.yaml", [f"strategy={strategy}", f"data.train.path={tmp_path}",
                                                 f"data.val.path={tmp_path}"])
    assert spec.strategy == strategy and spec.data.kind == {"knee3d": "3d", "cine": "cine"}.get(name, "2d")


def test_file_examples_name_missing_data():
    with pytest.raises(ValueError, match="data.train.path"):
        load_spec(EXAMPLES / "knee2d.yaml", ["data.train.path=/definitely/not/here"])


def test_quickstart_runs(tmp_path, capsys):
    out = tmp_path / "qs"
    code = train_main(["--spec", str(EXAMPLES / "quickstart.yaml"), "--set", f"output={out}",
                       "--set", "schedule.iterations=3", "--set", "data.train.synthetic.shape=[32, 32]",
                       "--set", "data.val.synthetic.shape=[32, 32]", "--set", "data.val.synthetic.n=2",
                       "--set", "logging.progress=false"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "final validation (gleam, 3 iterations): PSNR" in printed and "vs zero-filled" in printed
    assert (out / "checkpoints" / "iter_00000003.pt").exists()


@pytest.mark.parametrize("name", FILE_EXAMPLES)
def test_file_examples_fit_their_synthetic_data(name):
    """Each example's masks and model work on the synthetic data its comment says to generate
    (the generator's default shapes): one item drawn, masked and reconstructed by the model."""
    from gleam_core.data import collate
    from gleam_core.models import UnrolledNet
    from gleam_core.train.datasets import build_dataset
    from gleam_core.train.evaluation import batch_problem

    spec = load_spec(EXAMPLES / f"{name}.yaml", [f"data.train={{synthetic: {{kind: {name}, n: 1}}}}",
                                                      f"data.val={{synthetic: {{kind: {name}, n: 1}}}}"])
    ds = build_dataset(spec.data.train, spec.data.kind, spec.masks, spec.seed, train=True, key="data.train")
    item = ds[0]
    assert item["meta"]["kind"] == spec.data.kind
    accel = item["mask"].numel() / item["mask"].sum().item()
    assert accel > 2, f"{name}: mask acceleration {accel:.2f}"
    model = UnrolledNet(spec.model, spec.data.kind, int(item["maps"].shape[1]))
    problem, target = batch_problem(collate([item]), spec.data.kind, torch.device("cpu"))
    with torch.no_grad():
        out = model(problem)
    assert out.shape == target.shape and torch.isfinite(out).all()
