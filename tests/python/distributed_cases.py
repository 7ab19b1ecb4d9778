"""Shared pieces of the distributed tests: tiny specs written as YAML, torchrun launches of
gleam-train (``--standalone``: a fresh rendezvous port per launch, so tests never collide),
single-process references and checkpoint comparisons."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import yaml

from gleam_core.train.checkpoints import latest_checkpoint, load_checkpoint
from gleam_core.train.schema import to_dict
from gleam_core.train.trainer import Trainer
from train_cases import tiny_spec

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
ENV.pop("GLEAM_FAULT", None)


def spec_overrides(*overrides: str) -> list[str]:
    return ["strategy=gleam", "threads=1", "logging.tensorboard=false", "schedule.keep_last=10", *overrides]


def write_spec(tmp_path: Path, name: str, *overrides: str, iterations: int = 24) -> tuple[str, Path]:
    """A tiny gleam spec (2 unrolls, 2 modules, 32x32 synthetic slices) as a YAML file; returns
    (its path, its run directory)."""
    spec = tiny_spec(tmp_path / name, *spec_overrides(*overrides), iterations=iterations)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(to_dict(spec)))
    return str(path), Path(spec.output)


def reference(tmp_path: Path, name: str, *overrides: str, iterations: int = 24) -> Path:
    """Trains the same tiny spec in this process (single-process gleam); returns its run directory."""
    spec = tiny_spec(tmp_path / name, *spec_overrides(*overrides), iterations=iterations)
    threads = torch.get_num_threads()
    try:
        Trainer(spec).run()
    finally:
        torch.set_num_threads(threads)
    return Path(spec.output)


def torchrun(spec: str, nproc: int, *extra: str, fault: str | None = None, restarts: int = 0,
             timeout: float = 240) -> tuple[int, str, float]:
    """``torchrun --standalone --nproc-per-node N -m gleam_core.cli.train --spec SPEC ...``;
    returns (exit status, combined output, seconds)."""
    env = dict(ENV)
    if fault is not None:
        env["GLEAM_FAULT"] = fault
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
           f"--max-restarts={restarts}", "--monitor-interval=0.1", "-m", "gleam_core.cli.train", "--spec", spec,
           *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, cwd=REPO)
    return proc.returncode, proc.stdout, time.perf_counter() - t0


def state(run: Path, iteration: int | None = None) -> dict:
    """A run's latest checkpoint (or that of ``iteration``)."""
    if iteration is None:
        return load_checkpoint(latest_checkpoint(run))
    return load_checkpoint(run / "checkpoints" / f"iter_{iteration:08d}.pt")


def tensors(obj) -> list[torch.Tensor]:
    """Every tensor of nested state, in a fixed order."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for k in sorted(obj, key=str) for t in tensors(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in tensors(v)]
    return []


def max_rel_diff(a: dict, b: dict) -> float:
    """Largest |a - b| / max|b| over the model weights of two checkpoints."""
    assert a["model"].keys() == b["model"].keys()
    return max(float((a["model"][k] - b["model"][k]).abs().max() / b["model"][k].abs().max().clamp_min(1e-12))
               for k in a["model"])


def assert_same_training_state(a: dict, b: dict) -> None:
    """Bitwise equal weights and optimizer/scheduler states, and the same data position."""
    assert a["iteration"] == b["iteration"]
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    ta, tb = tensors(a["strategy_state"]), tensors(b["strategy_state"])
    assert len(ta) == len(tb) and all(torch.equal(x, y) for x, y in zip(ta, tb))
    assert a["data_state"] == b["data_state"]
