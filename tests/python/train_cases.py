"""Small models, SENSE problems and training specs shared by the model, strategy, trainer, CLI
and distributed tests."""

from __future__ import annotations

import torch

from gleam_core.models import DenoiserConfig, ModelConfig, Problem
from gleam_core.train.spec import Spec, parse_spec
from ops_cases import make


def problem_for(case, dtype=torch.complex64, seed=0) -> tuple[Problem, torch.Tensor]:
    """A SENSE problem with maps normalized so that ||A^H A|| <= 1, and a random target."""
    x, maps, y, mask = make(case, dtype, seed=seed)
    maps = maps / maps.abs().square().sum((1, 2), keepdim=True).sqrt()
    return Problem.from_data(y, maps, mask, case.fft_ndim), x


def tiny(type_: str = "pgd", **kw) -> ModelConfig:
    """A 2-unroll model config with a 4-feature denoiser; keywords override."""
    den = kw.pop("denoiser", {})
    return ModelConfig(type=type_, unrolls=kw.pop("unrolls", 2),
                       denoiser=DenoiserConfig(**{"features": 4, "blocks": 1, "layers": 3, **den}), **kw)


def tiny_spec(tmp_path, *overrides: str, iterations: int = 24) -> Spec:
    """A raw spec for a seconds-long run on 32x32 synthetic knee slices with 4 coils."""
    raw = {
        "output": str(tmp_path / "run"),
        "data": {"kind": "2d", "batch_size": 2, "val_batch_size": 2,
                 "train": {"synthetic": {"kind": "knee2d", "n": 8, "shape": [32, 32], "coils": 4, "slices": 4}},
                 "val": {"synthetic": {"kind": "knee2d", "n": 2, "shape": [32, 32], "coils": 4, "slices": 2}}},
        "masks": {"type": "random", "center_fractions": [0.1], "accelerations": [3]},
        "model": {"type": "pgd", "unrolls": 2, "denoiser": {"features": 8, "blocks": 1}},
        "gleam": {"modules": 2},
        "optimizer": {"lr": 3e-3},
        "schedule": {"iterations": iterations, "val_every": iterations, "checkpoint_every": 8, "keep_last": 2},
        "logging": {"every": 4, "progress": False},
    }
    return parse_spec(raw, list(overrides))
