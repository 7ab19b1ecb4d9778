"""``e2e``: plain backpropagation through every unroll (autograd keeps all activations)."""

from __future__ import annotations

from torch import Tensor

from ...models import Problem
from .base import WholeNetworkStrategy


class EndToEnd(WholeNetworkStrategy):
    name = "e2e"

    def forward_train(self, problem: Problem) -> Tensor:
        return self.model(problem)
