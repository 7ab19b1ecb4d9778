"""Datasets of a spec's ``data.train`` / ``data.val`` sources, through ``gleam_core.data``.

Training sets draw a fresh mask per item and epoch; validation sets use fixed masks (seeded
from the file name). A synthetic validation set defaults to ``seed + 1``, so it never
repeats the training data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from torch.utils.data import DataLoader, Dataset

from ..data import mask_from_spec, open_dataset
from ..data.open import SYNTHETIC_PREFIX
from .schema import SpecError
from .spec import DataConfig, DataSource

SYNTHETIC_KIND = {"2d": "knee2d", "3d": "knee3d", "cine": "cine"}


class Limited(Dataset):
    """The first ``limit`` items of a dataset (forwards ``set_epoch``)."""

    def __init__(self, dataset: Dataset, limit: int) -> None:
        self.dataset, self.limit = dataset, min(limit, len(dataset))

    def __len__(self) -> int:
        return self.limit

    def __getitem__(self, index: int):
        if not 0 <= index < self.limit:
            raise IndexError(f"index {index} out of range for {self.limit} items")
        return self.dataset[index]

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)


def build_dataset(src: DataSource, kind: str, masks: dict, seed: int, *, train: bool, key: str,
                  need_target: bool = True) -> Dataset:
    """The dataset of one source; ``key`` ("data.train"/"data.val") names it in errors.
    ``need_target``: refuse files acquired undersampled (no fully sampled target to train or
    score against, e.g. fastMRI test files); only reconstruction accepts them."""
    common = {"mask": masks, "fixed_masks": not train}
    try:
        if src.synthetic is not None:
            args = dict(src.synthetic)
            synth_kind = args.pop("kind", SYNTHETIC_KIND[kind])
            if "shape" in args and isinstance(args["shape"], list):
                args["shape"] = tuple(args["shape"])
            args.setdefault("seed", seed if train else seed + 1)
            args.setdefault("n", 16)
            dataset = open_dataset(f"{SYNTHETIC_PREFIX}{synth_kind}", **common, **args)
            where = f"{key}.synthetic"
        else:
            dataset = open_dataset(src.path, seed=seed, **common, **src.options)
            where = f"{key}.path"
    except TypeError as exc:  # an unknown keyword argument
        raise SpecError(f"{key}.{'synthetic' if src.synthetic is not None else 'options'}", str(exc)) from exc
    except ValueError as exc:
        raise SpecError(f"{key}", str(exc)) from exc
    if len(dataset) == 0:
        raise SpecError(where, "the dataset has no items")
    if need_target:
        _require_targets(dataset, key)
    if src.limit is not None:
        dataset = Limited(dataset, src.limit)
    item_kind = dataset[0]["meta"]["kind"]
    if item_kind != kind:
        raise SpecError("data.kind", f"got {kind!r}, but {key} yields {item_kind!r} items (set data.kind: "
                                     f"{item_kind} or choose matching data)")
    return dataset


def masks_option(text: str | None, default: dict, key: str = "--masks") -> dict:
    """A mask spec given on a command line as YAML (``{type: random, accelerations: [4], ...}``)
    or as the path of a YAML file holding one, validated; ``default`` (the run's masks) when
    ``text`` is None."""
    if text is None:
        return default
    what = repr(text)
    try:
        masks = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(key, f"{what} is not a valid mask spec: {exc}") from exc
    if isinstance(masks, str):  # a bare word: the name of a YAML file
        path = Path(text).expanduser()
        if not path.is_file():
            raise SpecError(key, f"{what} is neither a YAML mapping nor an existing YAML file")
        what = f"the contents of {str(path)!r}"
        try:
            masks = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            raise SpecError(key, f"{what} are not a valid mask spec: {exc}") from exc
    if not isinstance(masks, dict):
        raise SpecError(key, f"expected a YAML mapping such as '{{type: random, accelerations: [4]}}', got {what}")
    try:
        mask_from_spec(masks)
    except (ValueError, TypeError) as exc:
        raise SpecError(key, f"{what} is not a valid mask spec: {exc}") from exc
    return masks


def _require_targets(dataset: Dataset, key: str) -> None:
    entries = getattr(dataset, "entries", [])
    undersampled = [e.path.name for e in entries if e.info.get("undersampled")]
    if undersampled:
        shown = ", ".join(undersampled[:5]) + (f" and {len(undersampled) - 5} more" if len(undersampled) > 5 else "")
        raise SpecError(key, f"{len(undersampled)} file(s) were acquired undersampled and have no fully sampled "
                             f"target to train or score against: {shown} (fastMRI test files can only be "
                             "reconstructed, with gleam-recon)")


def val_loader(dataset: Dataset, cfg: DataConfig, collate: Callable) -> DataLoader:
    """Validation batches in a fixed order."""
    return DataLoader(dataset, batch_size=cfg.val_batch_size, shuffle=False, collate_fn=collate,
                      num_workers=cfg.num_workers)
