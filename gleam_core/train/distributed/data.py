"""The training batches of one data-parallel replica.

Replica q of R takes, at step i of an epoch, batch ``i * R + q`` of the single-process
stream's epoch (the same seeded permutation, the same batch size): one step of R replicas
consumes R consecutive single-process batches, so R replicas with batch size B see exactly the
items of a single process with batch size R x B. When the epoch's batch count is not a multiple
of R, the last step wraps around to the epoch's first batches (every replica always has a
batch, as DistributedDataParallel needs). Every pipeline stage of a replica builds the same
stream, so all stages see the same batches without sending them.

Positions are saved in single-process terms (``batch`` = single-process batches consumed in the
epoch = R x steps), so a checkpoint resumes with any number of replicas that divides that
position, including one process without torchrun.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from torch.utils.data import DataLoader, Dataset

from ..batches import BatchStream


class ShardedBatchStream(BatchStream):
    """A :class:`BatchStream` over replica ``replica``'s share (see the module docstring)."""

    def __init__(self, dataset: Dataset, batch_size: int, collate: Callable, seed: int = 0, shuffle: bool = True,
                 num_workers: int = 0, pin_memory: bool = False, replica: int = 0, replicas: int = 1) -> None:
        if not 0 <= replica < replicas:
            raise ValueError(f"replica must be in [0, {replicas}), got {replica}")
        super().__init__(dataset, batch_size, collate, seed, shuffle, num_workers, pin_memory)
        self.replica, self.replicas = replica, replicas

    @property
    def global_batches(self) -> int:
        """Single-process batches per epoch."""
        return math.ceil(len(self.dataset) / self.batch_size)

    @property
    def batches_per_epoch(self) -> int:
        """Steps per epoch (each consumes ``replicas`` single-process batches)."""
        return math.ceil(self.global_batches / self.replicas)

    def chunks(self, epoch: int) -> list[list[int]]:
        """This replica's batches (item indices) of ``epoch``, one per step."""
        order = self._order(epoch)
        every = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        return [every[(i * self.replicas + self.replica) % len(every)] for i in range(self.batches_per_epoch)]

    def _start(self) -> Iterator:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        loader = DataLoader(self.dataset, batch_sampler=self.chunks(self.epoch)[self.batch:],
                            collate_fn=self.collate, num_workers=self.num_workers, pin_memory=self.pin_memory)
        return iter(loader)

    def state_dict(self) -> dict:
        """The position in single-process terms: ``batch`` = steps x replicas."""
        return {"epoch": self.epoch, "batch": self.batch * self.replicas, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        if state["batch"] % self.replicas:
            raise ValueError(f"the checkpoint's data position (epoch {state['epoch']}, batch {state['batch']}) is "
                             f"not a multiple of distributed.replicas={self.replicas}; resume with a number of "
                             f"replicas that divides {state['batch']} (or 1)")
        super().load_state_dict({**state, "batch": state["batch"] // self.replicas})
