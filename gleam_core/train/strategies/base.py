"""The interface every training strategy implements, and the shared whole-network training step.

A strategy owns the model's optimizer(s) and turns one batch (a
:class:`~gleam_core.models.Problem` and its target (B, M, *S) complex) into one update.
``e2e``, ``checkpoint`` and ``invertible`` train the whole network against the final output
and differ only in how they get its gradients (:meth:`WholeNetworkStrategy.forward_train`);
``gleam`` trains M modules, each against its own output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor

from ...models import Problem, UnrolledNet
from ..losses import LossFn
from ..memory import StepMemory
from ..optim import OptimizerConfig, Updater
from ..timing import Stopwatch


@dataclass
class StepResult:
    """What one training step reports; tensors stay on their device until they are resolved.

    losses: one detached 0-dim loss per module (one for whole-network strategies).
    times: one :class:`Stopwatch` per module (GPU event pairs are read only when resolved).
    memory: peak bytes per module (CPU saved-tensor meter), or None where modules share a
        device measurement (CUDA).
    peak_memory: the step's peak bytes (max over devices).
    extra: other 0-dim tensors to log (e.g. the invertible strategy's inversion error).
    """

    losses: list[Tensor]
    times: list[Stopwatch]
    memory: list[int] | None
    peak_memory: int
    extra: dict[str, Tensor] = field(default_factory=dict)

    def resolve(self) -> dict:
        """Plain Python numbers (synchronizes the devices the step ran on); see :func:`resolve_steps`."""
        return resolve_steps([self])[0]


def resolve_steps(results: Sequence[StepResult]) -> list[dict]:
    """Plain Python numbers of several steps (a logging interval) in one device-to-host read.

    Waits once for each CUDA device the steps ran on (their losses may come from streams other
    than the current one), then gathers every loss and extra of every step on the device of the
    first one and reads them with a single ``tolist()`` (float64, so float32 values come back
    exactly as ``float()`` gives them); CUDA timings are then complete events. Returns one dict
    per step: ``loss`` and ``time_s`` (per module), ``peak_bytes``, ``module_peak_bytes`` (CPU)
    and the extras.
    """
    scalars = [t for r in results for t in (*r.losses, *r.extra.values())]
    cuda = {t.device for t in scalars if t.device.type == "cuda"}
    cuda |= {w.stream.device for r in results for w in r.times if w.cuda}
    for device in cuda:
        torch.cuda.synchronize(device)
    values: list[float] = []
    if scalars:
        home = scalars[0].device
        values = torch.stack([t.detach().reshape(()).to(home, torch.float64, non_blocking=True)
                              for t in scalars]).tolist()
    out, i = [], 0
    for r in results:
        n = len(r.losses)
        stats = {"loss": values[i:i + n], "time_s": [w.seconds() for w in r.times], "peak_bytes": int(r.peak_memory)}
        i += n
        if r.memory is not None:
            stats["module_peak_bytes"] = [int(m) for m in r.memory]
        for k in r.extra:
            stats[k] = values[i]
            i += 1
        out.append(stats)
    return out


class Strategy(ABC):
    """One way of training an :class:`UnrolledNet`.

    Args:
        model: the network (moved to ``device``; GLEAM may spread its modules over devices).
        loss_fn: (pred, target) -> 0-dim real loss.
        optim: optimizer and schedule settings; ``total`` is the number of iterations.
        device: the main device (batches arrive there; reconstructions are returned there).
    """

    name: ClassVar[str]

    def __init__(self, model: UnrolledNet, loss_fn: LossFn, optim: OptimizerConfig, total: int,
                 device: torch.device | str) -> None:
        self.model = model
        self.loss_fn = loss_fn
        self.device = torch.device(device)

    @property
    def num_modules(self) -> int:
        """The number of separately trained parts (and of losses per step)."""
        return 1

    @abstractmethod
    def train_step(self, problem: Problem, target: Tensor) -> StepResult:
        """One update from a batch; ``target`` (B, M, *S) complex on the main device."""

    @torch.no_grad()
    def reconstruct(self, problem: Problem) -> Tensor:
        """Inference through the whole chain: (B, M, *S) complex on the main device."""
        return self.model(problem)

    def join(self) -> None:
        """Orders the default streams after the work this strategy queued on streams of its own,
        before its weights or losses are read there (GPU-side, no host sync; nothing to do on one
        stream)."""

    def review(self, stats: Sequence[dict]) -> None:
        """Sees a logging interval's resolved statistics (:func:`resolve_steps`), e.g. to warn about them."""

    @abstractmethod
    def lrs(self) -> list[float]:
        """The current learning rate of each optimizer."""

    @abstractmethod
    def state_dict(self) -> dict:
        """Optimizer and scheduler states (the model's weights are saved separately)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None: ...


class WholeNetworkStrategy(Strategy):
    """One optimizer for all parameters and one loss on the final output; ``scale_grads``: fp16
    loss scaling (see :class:`~gleam_core.train.optim.Updater`)."""

    def __init__(self, model: UnrolledNet, loss_fn: LossFn, optim: OptimizerConfig, total: int,
                 device: torch.device | str, scale_grads: bool = False) -> None:
        super().__init__(model, loss_fn, optim, total, device)
        self.model.to(self.device)
        self.updater = Updater(model.parameters(), optim, total, scale_grads)
        self.memory = StepMemory(self.device, model.parameters())

    @abstractmethod
    def forward_train(self, problem: Problem) -> Tensor:
        """The network's output with whatever graph this strategy builds for backward."""

    def extra(self) -> dict[str, Tensor]:
        return {}

    def train_step(self, problem: Problem, target: Tensor) -> StepResult:
        watch = Stopwatch(self.device)
        with watch:
            with self.memory.measure(problem.constants() + [target]) as mem:
                self.updater.zero_grad()
                loss = self.loss_fn(self.forward_train(problem), target)
                self.updater.backward(loss)
            self.updater.step()
        return StepResult([loss.detach()], [watch], None if self.device.type == "cuda" else [mem["peak"]],
                          mem["peak"], self.extra())

    def lrs(self) -> list[float]:
        return [self.updater.lr]

    def state_dict(self) -> dict:
        return {"updaters": [self.updater.state_dict()]}

    def load_state_dict(self, state: dict) -> None:
        self.updater.load_state_dict(state["updaters"][0])
