"""Shared machinery of the datasets: mask seeding, epochs, file scanning, summaries.

Masks: with ``fixed_masks=True`` (validation/test) an item's mask is seeded from its file
name (fastMRI convention: every slice of a volume gets the same mask, every epoch); with
``fixed_masks=False`` (training) it is seeded from ``(seed, epoch, index)``: a fresh mask per
item and epoch, reproducible. Call :meth:`MaskedDataset.set_epoch` at the start of each epoch
(before iterating a DataLoader, whose workers copy the dataset). ``mask=None`` gives fully
sampled items (a mask of ones).
"""

from __future__ import annotations

import sys
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .formats import DataFormatError
from .masks import MaskFunc, mask_from_spec, training_seed
from .splits import Source, resolve_files


class MaskedDataset(Dataset):
    """A dataset whose items are undersampled on the fly by a mask function."""

    def __init__(self, mask: Mapping[str, Any] | MaskFunc | None, fixed_masks: bool, seed: int) -> None:
        self.mask_func = mask_from_spec(mask)
        self.fixed_masks = bool(fixed_masks)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the training masks of ``epoch`` (no effect with fixed masks)."""
        self.epoch = int(epoch)

    def check_mask(self, shape: tuple[int, ...]) -> None:
        """Draws one mask for items of spatial ``shape``, so that a mask spec that cannot work
        with it (an unreachable acceleration, say) fails when the dataset is built."""
        if self.mask_func is not None:
            self.mask_func(shape, 0)

    def mask_for(self, shape: tuple[int, ...], index: int, name: str) -> Tensor:
        """The compact mask (1, *S') of item ``index`` with spatial shape ``shape``."""
        if self.mask_func is None:
            return torch.ones((1,) * (len(shape) + 1))
        seed = name if self.fixed_masks else training_seed(self.seed, self.epoch, index)
        return self.mask_func(shape, seed)


@dataclass
class FileEntry:
    """One scanned file: its item count, the item k-space shape (C, *S) and format details."""

    path: Path
    items: int
    kspace_shape: tuple[int, ...]
    sets: int
    info: dict[str, Any] = field(default_factory=dict)


class H5Dataset(MaskedDataset):
    """Base of the file datasets: resolves the source, scans and validates every file up front
    (so a bad file fails at construction, never halfway through training), and indexes items.

    ``on_error``: ``"raise"`` stops at the first bad file; ``"skip"`` leaves it out and lists it
    in :attr:`skipped` and in the summary; ``"auto"`` raises for files named explicitly and skips
    within directory scans. A source in which no file is usable always raises.
    """

    item_name = "items"

    def __init__(self, source: Source, *, mask: Mapping[str, Any] | MaskFunc | None = None, fixed_masks: bool = False,
                 seed: int = 0, on_error: str = "auto", verbose: bool = True) -> None:
        super().__init__(mask, fixed_masks, seed)
        if on_error not in ("auto", "raise", "skip"):
            raise ValueError(f"on_error must be 'auto', 'raise' or 'skip', got {on_error!r}")
        files, skipped, explicit = resolve_files(source)
        strict = on_error == "raise" or (on_error == "auto" and explicit)
        self.entries: list[FileEntry] = []
        self.skipped: list[tuple[Path, str]] = list(skipped)
        for path in files:
            try:
                self.entries.append(self._scan(path))
            except DataFormatError as exc:
                if strict:
                    raise
                self.skipped.append((path, str(exc)))
        if not self.entries:
            reasons = "; ".join(f"{p.name}: {why}" for p, why in self.skipped)
            raise ValueError(f"{type(self).__name__}: no usable files in {source!s}" + (f" ({reasons})" if reasons else ""))
        self.index = [(e, j) for e, entry in enumerate(self.entries) for j in range(entry.items)]
        for shape in {e.kspace_shape[1:] for e in self.entries if not e.info.get("undersampled")}:
            self.check_mask(shape)
        if verbose:
            print(self.summary(), file=sys.stderr)

    @abstractmethod
    def _scan(self, path: Path) -> FileEntry:
        """Validates one file and describes it; raises DataFormatError naming file and key."""

    @abstractmethod
    def _load(self, entry: FileEntry, j: int, index: int) -> dict[str, Any]:
        """Item ``j`` of ``entry`` (global index ``index``), opening the file for this call only."""

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{type(self).__name__} index {index} out of range for {len(self)} items")
        e, j = self.index[index % len(self)]
        item = self._load(self.entries[e], j, index % len(self))
        # A NaN sample in a file would surface later as a NaN loss blamed on the optimizer.
        for key in ("kspace", "maps", "target"):
            value = item.get(key)
            if isinstance(value, Tensor) and not bool(torch.isfinite(value).all()):
                bad = int((~torch.isfinite(value)).sum())
                raise DataFormatError(f"{self.entries[e].path}: item {j} ({self.item_name}) has {bad} NaN or "
                                      f"infinite values in {key!r}")
        return item

    def summary(self) -> str:
        """Files, items, shapes and coils (printed on load when verbose)."""
        shapes: dict[tuple, int] = {}
        for entry in self.entries:
            key = (entry.kspace_shape, entry.sets)
            shapes[key] = shapes.get(key, 0) + entry.items
        lines = [f"{type(self).__name__}: {len(self.entries)} files, {len(self)} {self.item_name}"
                 + (f", {len(self.skipped)} skipped" if self.skipped else "")
                 + f"; masks: {self.mask_func!r} ({'fixed per file' if self.fixed_masks else 'fresh per item'})"]
        for (shape, sets), n in sorted(shapes.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {n} {self.item_name} with kspace (C, *S) = {shape}: {shape[0]} coils, {sets} map set(s)")
        for path, why in self.skipped:
            lines.append(f"  skipped {path}: {why}")
        return "\n".join(lines)
