"""An endless, resumable stream of training batches.

Epoch e visits the dataset in a permutation seeded by (seed, e); the position (epoch, batch)
is part of every checkpoint, so a resumed run continues with exactly the batches (and, through
``dataset.set_epoch``, the per-item training masks) an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset


class BatchStream:
    """``next(stream)`` yields collated batches forever, epoch after epoch.

    Args:
        dataset: a map-style dataset; if it has ``set_epoch(epoch)`` it is called at each epoch
            start (training masks are drawn per (epoch, index)).
        batch_size: items per batch (the last batch of an epoch may be smaller).
        collate: list of items -> batch.
        seed: seeds the per-epoch permutation.
        shuffle: permute each epoch (else the natural order).
        num_workers, pin_memory: passed to the DataLoader that loads each epoch.
    """

    def __init__(self, dataset: Dataset, batch_size: int, collate: Callable, seed: int = 0, shuffle: bool = True,
                 num_workers: int = 0, pin_memory: bool = False) -> None:
        if len(dataset) == 0:
            raise ValueError("the training dataset is empty")
        self.dataset, self.batch_size, self.collate = dataset, batch_size, collate
        self.seed, self.shuffle = seed, shuffle
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.epoch, self.batch = 0, 0
        self._it: Iterator | None = None

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def _order(self, epoch: int) -> list[int]:
        n = len(self.dataset)
        if not self.shuffle:
            return list(range(n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(n, generator=g).tolist()

    def _start(self) -> Iterator:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        order = self._order(self.epoch)
        chunks = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)][self.batch:]
        loader = DataLoader(self.dataset, batch_sampler=chunks, collate_fn=self.collate,
                            num_workers=self.num_workers, pin_memory=self.pin_memory)
        return iter(loader)

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self):
        if self._it is None:
            self._it = self._start()
        batch = next(self._it)
        self.batch += 1
        if self.batch == self.batches_per_epoch:
            self.epoch, self.batch, self._it = self.epoch + 1, 0, None
        return batch

    def state_dict(self) -> dict:
        """The position: batches consumed in the current epoch (not those prefetched by workers)."""
        return {"epoch": self.epoch, "batch": self.batch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state["batch"] >= self.batches_per_epoch:
            raise ValueError(f"data position batch {state['batch']} is beyond an epoch of {self.batches_per_epoch} "
                             "batches (the dataset or batch size changed since the checkpoint)")
        self.epoch, self.batch, self.seed, self._it = state["epoch"], state["batch"], state["seed"], None
