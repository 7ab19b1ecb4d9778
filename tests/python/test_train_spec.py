"""Spec validation: errors name the key path, the value and what is allowed; overrides with
--set; the CLI exits with status 2 and the message on bad specs."""

from __future__ import annotations

import pytest
import yaml

from gleam_core.cli.train import main as train_main
from gleam_core.train.schema import SpecError
from gleam_core.train.spec import load_spec, parse_spec, spec_to_yaml

GOOD = {"data": {"train": {"synthetic": {"n": 4}}, "val": {"synthetic": {"n": 2}}},
        "schedule": {"iterations": 10}}


def err(raw: dict, *sets: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(raw, list(sets))
    return str(info.value)


def test_defaults_and_overrides():
    spec = parse_spec(GOOD, ["strategy=gleam", "gleam.modules=2", "optimizer.lr=1e-4", "model.denoiser.features=8",
                             "gleam.devices=[cpu, cpu]", "optimizer.betas=[0.8, 0.9]"])
    assert spec.strategy == "gleam" and spec.gleam.modules == 2 and spec.gleam.devices == ["cpu", "cpu"]
    assert spec.optimizer.lr == 1e-4 and spec.optimizer.betas == (0.8, 0.9)
    assert spec.model.denoiser.features == 8 and spec.model.unrolls == 8 and spec.loss == "l1"
    again = parse_spec(yaml.safe_load(spec_to_yaml(spec)))
    assert again == spec


def test_unknown_key():
    msg = err({**GOOD, "model": {"unrols": 4}})
    assert "'model.unrols'" in msg and "unknown key" in msg and "did you mean 'unrolls'" in msg
    assert "allowed keys here" in msg and "share_weights" in msg
    assert "'stratgy'" in err(GOOD, "stratgy=gleam")


@pytest.mark.parametrize("override,key,expected", [
    ("model.unrolls=eight", "model.unrolls", "expected an int"),
    ("model.unrolls=0", "model.unrolls", "expected a value >= 1"),
    ("model.unrolls=2.5", "model.unrolls", "expected an int"),
    ("optimizer.lr=fast", "optimizer.lr", "expected a number"),
    ("logging.tensorboard=maybe", "logging.tensorboard", "expected true/false"),
    ("strategy=greedy", "strategy", "allowed: 'e2e', 'checkpoint', 'invertible', 'gleam'"),
    ("model.denoiser.kernel_size=4", "model.denoiser.kernel_size", "expected an odd number"),
    ("gleam.overlap=sometimes", "gleam.overlap", "expected true/false or one of 'auto'"),
    ("optimizer.betas=[0.9]", "optimizer.betas", "expected exactly 2"),
    ("data=3", "data", "expected a mapping"),
    ("optimizer.grad_clip=-1", "optimizer.grad_clip", "expected a value > 0"),
    ("optimizer.lr=0", "optimizer.lr", "expected a value > 0"),
    ("model.denoiser.lipschitz=0", "model.denoiser.lipschitz", "expected a value > 0"),
    ("invertible.anchor_every=0", "invertible.anchor_every", "expected a value >= 1"),
    ("invertible.anchor_every=often", "invertible.anchor_every", "expected an int or one of 'auto'"),
])
def test_wrong_types_and_values(override, key, expected):
    msg = err(GOOD, override)
    assert f"'{key}'" in msg and expected in msg, msg
    assert override.split("=", 1)[1].strip("[]") in msg


def test_missing_or_conflicting_data(tmp_path):
    missing = str(tmp_path / "nowhere")
    msg = err({**GOOD, "data": {"train": {"path": missing}, "val": {"synthetic": {}}}})
    assert "'data.train.path'" in msg and "does not exist" in msg and missing in msg
    msg = err({**GOOD, "data": {"train": {"synthetic": {}}}})
    assert "'data.val'" in msg and "exactly one of 'path'" in msg
    msg = err({**GOOD, "data": {"train": {"synthetic": {}, "path": str(tmp_path)}, "val": {"synthetic": {}}}})
    assert "'data.train'" in msg
    msg = err({**GOOD, "data": {"train": {"synthetic": {"nn": 3}}, "val": {"synthetic": {}}}})
    assert "'data.train.synthetic.nn'" in msg and "unknown key" in msg and "coils" in msg


def test_data_globs_may_span_folders(tmp_path):
    for site in ("a", "b"):
        (tmp_path / site / "train").mkdir(parents=True)
        (tmp_path / site / "train" / "x.h5").touch()
    for pattern in (f"{tmp_path}/*/train/*.h5", f"{tmp_path}/**/*.h5"):
        spec = parse_spec({**GOOD, "data": {"train": {"path": pattern}, "val": {"synthetic": {}}}})
        assert spec.data.train.path == pattern
    msg = err({**GOOD, "data": {"train": {"path": f"{tmp_path}/*/val/*.h5"}, "val": {"synthetic": {}}}})
    assert "does not exist" in msg


def test_rules_across_keys():
    assert "'gleam.modules'" in err(GOOD, "strategy=gleam", "gleam.modules=3")
    assert "'checkpoint.segment'" in err(GOOD, "strategy=checkpoint", "checkpoint.segment=3")
    assert "'schedule'" in err(GOOD, "schedule.epochs=2")
    assert "'masks'" in err(GOOD, "masks.type=spiral")
    assert "'model'" in err(GOOD, "model.denoiser.conv=3d")


def test_cli_reports_bad_spec(tmp_path, capsys):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "output": str(tmp_path / "run"), "model": {"unrols": 4}}))
    assert train_main(["--spec", str(path)]) == 2
    assert "spec error at 'model.unrols'" in capsys.readouterr().err
    assert train_main(["--spec", str(path), "--set", "nonsense"]) == 2
    assert "key.path=value" in capsys.readouterr().err
    assert train_main(["--spec", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert train_main(["--spec", str(tmp_path)]) == 2
    assert "is a directory, not a YAML file" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing started


def test_load_spec_reads_yaml_1_1_floats(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("data: {train: {synthetic: {}}, val: {synthetic: {}}}\nschedule: {iterations: 3}\n"
                    "optimizer: {lr: 1e-4, weight_decay: 1e-4}\n")
    spec = load_spec(path)
    assert spec.optimizer.lr == 1e-4 and spec.optimizer.weight_decay == 1e-4
