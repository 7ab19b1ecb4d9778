"""``checkpoint``: gradient checkpointing per segment of unrolls.

Only each segment's input is kept; in backward ``torch.utils.checkpoint`` (non-reentrant: the
segment inputs may be detached tensors that need no grad) recomputes the segment with grad. The
last segment runs without checkpointing, as in ``torch.utils.checkpoint.checkpoint_sequential``:
its backward comes first, so recomputing it would only cost time.
"""

from __future__ import annotations

from torch import Tensor
from torch.utils.checkpoint import checkpoint

from ...models import Problem, UnrollChain, UnrolledNet
from ..losses import LossFn
from ..memory import count_inner_saves, metering
from ..optim import OptimizerConfig
from .base import WholeNetworkStrategy


class Checkpointed(WholeNetworkStrategy):
    """``segment``: unrolls per checkpointed segment (1 = per unroll); must divide the unrolls."""

    name = "checkpoint"

    def __init__(self, model: UnrolledNet, loss_fn: LossFn, optim: OptimizerConfig, total: int, device,
                 segment: int = 1, scale_grads: bool = False) -> None:
        super().__init__(model, loss_fn, optim, total, device, scale_grads)
        u = len(model.unrolls)
        if segment < 1 or u % segment:
            raise ValueError(f"checkpoint.segment must be a positive divisor of model.unrolls={u}, got {segment!r}")
        self.segments = [UnrollChain(list(model.unrolls[i:i + segment]), first=i) for i in range(0, u, segment)]

    @staticmethod
    def _run(chain: UnrollChain, problem: Problem, x: Tensor) -> Tensor:
        with count_inner_saves():
            return chain(problem, x)

    def forward_train(self, problem: Problem) -> Tensor:
        x = self.model.start(problem)
        # Early stop ends a recomputation by raising inside the last pack hook, before the memory
        # meter sees what it keeps; without it, recomputation runs the ops after the segment's
        # last saved tensor too. Only while metering (CPU); the gradients are the same.
        early_stop = not metering()
        for chain in self.segments[:-1]:
            x = checkpoint(self._run, chain, problem, x, use_reentrant=False, early_stop=early_stop)
        return self.model.readout(self.segments[-1](problem, x), problem)
