"""DGL-style replay buffer for one module (``distributed.replay``, off by default).

Decoupled Greedy Learning (Belilovsky et al., 2020) lets each module train on a buffer of the
inputs it received, so its updates do not depend only on the freshest hand-off. Here each
module of a stage keeps its last ``size`` inputs ``x_in`` (complex (B, M, *S), detached) with the
batch's :class:`~gleam_core.models.Problem` and target, and after each fresh update makes
``steps`` extra optimizer steps on entries drawn uniformly (the current one included) with a
generator seeded by (seed, module, replica). The count of extra steps is fixed, so the data-
parallel replicas of a stage stay in step and runs are deterministic; the learning-rate
schedule advances only on fresh batches. Buffers are not checkpointed.
"""

from __future__ import annotations

from collections import deque

import torch
from torch import Tensor

from ...models import Problem
from ..strategies import GleamUnit


class ReplayBuffer:
    """The last ``size`` inputs of one module and ``steps`` replayed updates per fresh one."""

    def __init__(self, size: int, steps: int, seed: int) -> None:
        self.items: deque[tuple[Tensor, Problem, Tensor]] = deque(maxlen=size)
        self.steps = steps
        self.generator = torch.Generator().manual_seed(seed)
        self.replayed = 0

    def add(self, x_in: Tensor, problem: Problem, target: Tensor) -> None:
        self.items.append((x_in.detach(), problem, target))

    def replay(self, unit: GleamUnit) -> list[Tensor]:
        """``steps`` optimizer steps of ``unit`` on buffered inputs; their detached losses."""
        losses = []
        updater = unit.updater
        for _ in range(self.steps):
            i = int(torch.randint(len(self.items), (1,), generator=self.generator))
            x_in, problem, target = self.items[i]
            updater.zero_grad()
            loss = unit.loss_fn(unit.chain(problem, x_in), target)
            updater.backward(loss)
            updater.step(schedule=False)
            losses.append(loss.detach())
            self.replayed += 1
        return losses
