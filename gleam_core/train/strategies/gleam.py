"""``gleam``: greedy, decoupled module-wise training (GLEAM).

The network is split into M modules of K unrolls. Each module has its own optimizer and
scheduler and a local loss of its own output against the target; its input is the previous
module's output, detached, so no gradient crosses a module boundary. Every module steps on
every batch. Module m runs on lane m mod P (``devices``): on CUDA each lane has its own stream,
hand-offs are ordered by events and bounded by ``queue_depth``, and no lane waits for the end
of a step, so module 0 may start the next batch while later modules finish this one
(:class:`~.pipeline.Pipeline`, the same pipeline a distributed stage runs). Inference runs the
whole chain.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...models import Problem, UnrolledNet
from ..losses import LossFn
from ..optim import OptimizerConfig
from .base import StepResult, Strategy
from .lanes import Lane, parse_device
from .pipeline import GleamUnit, Pipeline


class Gleam(Strategy):
    """Args (besides :class:`Strategy`'s): ``modules`` M (divides the unrolls); ``devices`` the
    lanes (default: the main device); ``overlap`` issue order: True interleaves module m's
    update after module m+1's forward, False runs modules strictly one after the other (least
    memory on one device), "auto" overlaps when there is more than one lane; ``queue_depth``
    hand-offs a module may be ahead of the next one (several lanes); ``scale_grads`` fp16 loss
    scaling, one scaler per module."""

    name = "gleam"

    def __init__(self, model: UnrolledNet, loss_fn: LossFn, optim: OptimizerConfig, total: int, device,
                 modules: int = 1, devices: list[str] | None = None, overlap: bool | str = "auto",
                 queue_depth: int = 1, scale_grads: bool = False) -> None:
        super().__init__(model, loss_fn, optim, total, device)
        if overlap not in (True, False, "auto"):
            raise ValueError(f"gleam.overlap must be true, false or 'auto', got {overlap!r}")
        names = devices or [str(self.device)]
        self.lanes = [Lane(parse_device(d, f"gleam.devices[{i}]")) for i, d in enumerate(names)]
        if len({lane.device.type for lane in self.lanes}) > 1:
            # Host-side memory metering and non-blocking device-to-host hand-offs assume one kind.
            raise ValueError(f"gleam.devices: {names} mixes CPU and CUDA devices; use all cpu or all cuda:N")
        self.units = [GleamUnit(m, chain, loss_fn, optim, total, self.lanes[m % len(self.lanes)], scale_grads)
                      for m, chain in enumerate(model.split(modules))]
        self.overlap = len(self.lanes) > 1 if overlap == "auto" else overlap
        self.pipeline = Pipeline(self.units, self.overlap, queue_depth)

    @property
    def num_modules(self) -> int:
        return len(self.units)

    def train_step(self, problem: Problem, target: Tensor) -> StepResult:
        return self.pipeline.step(problem, target)

    def join(self) -> None:
        self.pipeline.join()

    @torch.no_grad()
    def reconstruct(self, problem: Problem) -> Tensor:
        self.join()
        problems: dict[torch.device, Problem] = {}
        x = problem.ahy
        for unit in self.units:
            p = problems.setdefault(unit.device, problem.to(unit.device))
            x = unit.chain(p, x.to(unit.device))
        return x.to(self.device)

    def lrs(self) -> list[float]:
        return [u.updater.lr for u in self.units]

    def state_dict(self) -> dict:
        self.join()
        return {"updaters": [u.updater.state_dict() for u in self.units]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["updaters"]) != len(self.units):
            raise ValueError(f"checkpoint has {len(state['updaters'])} module optimizers, this gleam run has "
                             f"{len(self.units)} modules (gleam.modules must match the checkpoint)")
        for unit, s in zip(self.units, state["updaters"]):
            unit.updater.load_state_dict(s)
