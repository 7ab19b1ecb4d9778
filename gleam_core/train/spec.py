"""The training spec: what ``gleam-train --spec spec.yaml`` reads, validated before any work.

Sections: ``data`` (files or ``synthetic:``), ``masks``, ``model``, ``strategy`` and its options
(``checkpoint``, ``invertible``, ``gleam``), ``loss``, ``optimizer``, ``schedule``, ``logging``,
``output``, and ``distributed`` (torchrun only, docs/distributed.md). Every key has a default
except the data sources. :func:`load_spec` applies
``--set key.path=value`` overrides, validates types and values (:mod:`.schema`) and the rules
that span keys, and raises :class:`SpecError` naming the key path, the value and what is allowed.
docs/training.md is the reference of every key.
"""

from __future__ import annotations

import glob
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import yaml

from ..data.masks import mask_from_spec
from ..models import ModelConfig
from .distributed.config import DistributedOptions, check_distributed
from .optim import OptimizerConfig
from .schema import SpecError, from_dict, set_path, to_dict

STRATEGY_NAMES = ("e2e", "checkpoint", "invertible", "gleam")
# ``precision:`` -> the dtype the denoisers' CNNs run in under autocast (None: the parameters').
# Data consistency and the ops stay complex64; fp16 adds a gradient scaler per optimizer.
COMPUTE_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class DataSource:
    """Exactly one of ``path`` (a directory of HDF5 files, a file, or a glob) or ``synthetic``
    (arguments of ``gleam_core.data.SyntheticDataset``: kind, n, seed, shape, coils, slices,
    noise, mode; generated on the fly). ``options`` go to the file dataset (e.g. ``mode:
    slices`` for 3D volumes, ``maps_dir``)."""

    path: str | None = None
    synthetic: dict | None = None
    options: dict = field(default_factory=dict)
    limit: int | None = field(default=None, metadata={"min": 1})   # use only the first N items


@dataclass
class DataConfig:
    kind: Literal["2d", "3d", "cine"] = "2d"
    train: DataSource = field(default_factory=DataSource)
    val: DataSource = field(default_factory=DataSource)
    batch_size: int = field(default=1, metadata={"min": 1})
    val_batch_size: int = field(default=1, metadata={"min": 1})
    num_workers: int = field(default=0, metadata={"min": 0})
    shuffle: bool = True


@dataclass
class CheckpointOptions:
    segment: int = field(default=1, metadata={"min": 1})    # unrolls per checkpointed segment


@dataclass
class InvertibleOptions:
    iters: int = field(default=30, metadata={"min": 1})     # fixed-point iterations per inverse
    tol: float = field(default=1e-6, metadata={"min": 0.0})  # early stop (CPU only)
    # keep the input of every S-th unroll so inversion errors compound over S unrolls at most
    anchor_every: int | Literal["auto"] = field(default="auto", metadata={"min": 1})


@dataclass
class GleamOptions:
    modules: int = field(default=4, metadata={"min": 1})
    devices: list[str] | None = None                         # lanes; module m on devices[m % P]
    overlap: bool | Literal["auto"] = "auto"
    # hand-offs a module may have produced that the next module (other lane or rank) has not taken
    queue_depth: int = field(default=1, metadata={"min": 1})


@dataclass
class ScheduleConfig:
    """Training length: exactly one of ``iterations`` or ``epochs``; intervals in iterations."""

    iterations: int | None = field(default=None, metadata={"min": 1})
    epochs: int | None = field(default=None, metadata={"min": 1})
    val_every: int = field(default=100, metadata={"min": 1})
    val_batches: int | None = field(default=None, metadata={"min": 1})   # None: whole val set
    checkpoint_every: int = field(default=100, metadata={"min": 1})
    keep_last: int = field(default=3, metadata={"min": 1})


@dataclass
class LoggingConfig:
    every: int = field(default=10, metadata={"min": 1})      # iterations between metric lines
    format: Literal["jsonl", "csv"] = "jsonl"
    tensorboard: bool = True
    images: bool = True                                      # PNG at each validation
    progress: bool = True                                    # progress bar


@dataclass
class Spec:
    output: str = "runs/run"
    seed: int = 0
    device: str = "cpu"
    threads: int | None = field(default=None, metadata={"min": 1})   # torch intra-op threads
    strategy: Literal["e2e", "checkpoint", "invertible", "gleam"] = "e2e"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"   # the denoisers' CNNs; DC stays complex64
    loss: Literal["l1", "l2", "ssim"] = "l1"
    data: DataConfig = field(default_factory=DataConfig)
    masks: dict = field(default_factory=lambda: {"type": "random", "center_fractions": [0.08], "accelerations": [4]})
    model: ModelConfig = field(default_factory=ModelConfig)
    checkpoint: CheckpointOptions = field(default_factory=CheckpointOptions)
    invertible: InvertibleOptions = field(default_factory=InvertibleOptions)
    gleam: GleamOptions = field(default_factory=GleamOptions)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    distributed: DistributedOptions = field(default_factory=DistributedOptions)   # torchrun only


def check_source(src: DataSource, key: str) -> None:
    """Checks the source and makes its path absolute (relative paths are relative to the working
    directory), so the resolved spec saved in the run directory works from anywhere."""
    if (src.path is None) == (src.synthetic is None):
        raise SpecError(key, f"give exactly one of 'path' (HDF5 files) or 'synthetic' (generated data); got "
                             f"path={src.path!r}, synthetic={src.synthetic!r}")
    if src.synthetic is not None:
        from ..data import SyntheticDataset
        allowed = set(inspect.signature(SyntheticDataset).parameters) - {"mask", "fixed_masks"}
        unknown = sorted(set(src.synthetic) - allowed)
        if unknown:
            raise SpecError(f"{key}.synthetic.{unknown[0]}",
                            f"unknown key; allowed keys here: {', '.join(sorted(allowed))}")
    if src.path is not None:
        p = Path(src.path).expanduser().absolute()
        if not p.exists() and not glob.glob(str(p), recursive=True):  # globs may span folders (data/*/x/**)
            raise SpecError(f"{key}.path", f"{src.path!r} does not exist (resolved to {str(p)!r}); expected a "
                                           "directory of HDF5 files, an HDF5 file or a glob")
        src.path = str(p)


def parse_source(text: str, key: str) -> DataSource:
    """A data source given on a command line: an existing path or glob, or a YAML mapping in the
    spec's form (e.g. ``{synthetic: {kind: knee2d, n: 8}}``); ``key`` names the option in errors."""
    if Path(text).expanduser().exists() or glob.glob(os.path.expanduser(text), recursive=True):
        src = DataSource(path=text)
    else:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError:
            raw = None
        if not isinstance(raw, dict):
            raise SpecError(key, f"{text!r} does not exist; expected a path, a glob, or a mapping such as "
                                 "'{synthetic: {n: 8}}'")
        src = from_dict(DataSource, raw, key)
    check_source(src, key)
    return src


def check_spec(spec: Spec) -> None:
    """Rules that span keys (and data paths made absolute)."""
    check_source(spec.data.train, "data.train")
    check_source(spec.data.val, "data.val")
    s = spec.schedule
    if (s.iterations is None) == (s.epochs is None):
        raise SpecError("schedule", f"give exactly one of 'iterations' or 'epochs', got iterations={s.iterations!r}, "
                                    f"epochs={s.epochs!r}")
    try:
        spec.model.check(spec.data.kind)
    except ValueError as exc:
        raise SpecError("model", str(exc)) from exc
    u = spec.model.unrolls
    if spec.strategy == "gleam" and u % spec.gleam.modules:
        raise SpecError("gleam.modules", f"got {spec.gleam.modules}, which does not divide model.unrolls={u} "
                                         f"(allowed: a divisor of {u})")
    if spec.strategy == "checkpoint" and u % spec.checkpoint.segment:
        raise SpecError("checkpoint.segment", f"got {spec.checkpoint.segment}, which does not divide "
                                              f"model.unrolls={u} (allowed: a divisor of {u})")
    if spec.strategy == "invertible" and spec.precision != "fp32":
        raise SpecError("precision", f"got {spec.precision!r} with strategy invertible, which rebuilds each unroll's "
                                     "input by a fixed-point inverse of the denoiser: in reduced precision its error "
                                     "(~1e-2 for bf16) corrupts the gradients. Allowed with invertible: fp32")
    try:
        mask_from_spec(spec.masks)
    except ValueError as exc:
        raise SpecError("masks", str(exc)) from exc
    check_distributed(spec)


def parse_spec(raw: dict, overrides: list[str] = ()) -> Spec:
    """Validates a raw spec mapping after applying ``key.path=value`` overrides."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise SpecError("", f"the spec must be a mapping of sections, got {type(raw).__name__}")
    raw = yaml.safe_load(yaml.safe_dump(raw))  # a deep copy the overrides may change
    for assignment in overrides:
        set_path(raw, assignment)
    spec = from_dict(Spec, raw)
    check_spec(spec)
    return spec


def load_spec(path: str | Path, overrides: list[str] = ()) -> Spec:
    """Reads and validates a YAML spec file (see :func:`parse_spec`)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory, not a YAML file" if path.is_dir() else "does not exist"
        raise SpecError("", f"spec file {str(path)!r} {what}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError("", f"{path} is not valid YAML: {exc}") from exc
    return parse_spec(raw, overrides)


def spec_to_yaml(spec: Spec) -> str:
    """The fully resolved spec (every default filled in) as YAML."""
    return yaml.safe_dump(to_dict(spec), sort_keys=False)
