"""Datasets of a spec's ``data.train`` / ``data.val`` sources, through ``gleam_core.data``.

Training sets draw a fresh mask per item and epoch; validation sets use fixed masks (seeded
from the file name). A synthetic validation set defaults to ``seed + 1``, so it never
repeats the training data.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.utils.data import DataLoader, Dataset

from ..data import open_dataset
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


def build_dataset(src: DataSource, kind: str, masks: dict, seed: int, *, train: bool, key: str) -> Dataset:
    """The dataset of one source; ``key`` ("data.train"/"data.val") names it in errors."""
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
    if src.limit is not None:
        dataset = Limited(dataset, src.limit)
    item_kind = dataset[0]["meta"]["kind"]
    if item_kind != kind:
        raise SpecError("data.kind", f"got {kind!r}, but {key} yields {item_kind!r} items (set data.kind: "
                                     f"{item_kind} or choose matching data)")
    return dataset


def val_loader(dataset: Dataset, cfg: DataConfig, collate: Callable) -> DataLoader:
    """Validation batches in a fixed order."""
    return DataLoader(dataset, batch_size=cfg.val_batch_size, shuffle=False, collate_fn=collate,
                      num_workers=cfg.num_workers)
