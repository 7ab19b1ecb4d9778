"""``gleam``: greedy, decoupled module-wise training (GLEAM).

The network is split into M modules of K unrolls. Each module has its own optimizer and
scheduler and a local loss of its own output against the target; its input is the previous
module's output, detached, so no gradient crosses a module boundary. Every module steps on
every batch. Module m runs on lane m mod P (``devices``): on CUDA each lane has its own stream
and hand-offs are ordered by events, and with overlap the host issues module m+1's forward
before module m's backward and update, so the GPU(s) run them concurrently. Inference runs the
whole chain.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor

from ...models import Problem, UnrollChain, UnrolledNet
from ..losses import LossFn
from ..memory import SavedTensorMeter, StepMemory, cuda_peaks
from ..optim import OptimizerConfig, Updater
from ..timing import Stopwatch
from .base import StepResult, Strategy
from .lanes import Lane, parse_device


class GleamUnit:
    """One GLEAM module: K unrolls, their optimizer and schedule, the local loss, one lane.

    The building block of a pipeline stage: :meth:`step` takes the previous module's output
    (or ``model.start(problem)``, e.g. ``problem.ahy``, for module 0) and returns this module's
    detached output and its loss.
    :meth:`forward` and :meth:`update` are the two halves, so a caller may interleave modules.
    """

    def __init__(self, index: int, chain: UnrollChain, loss_fn: LossFn, optim: OptimizerConfig, total: int,
                 lane: Lane, readout: Callable[[Tensor, Problem], Tensor] | None = None) -> None:
        self.index, self.lane = index, lane
        self.readout = readout  # (chain state, problem) -> image for the local loss (None: the state is the image)
        self.chain = chain.to(lane.device)
        self.loss_fn = loss_fn
        self.updater = Updater(chain.parameters(), optim, total)
        self.memory = StepMemory(lane.device, chain.parameters())
        self.watch = Stopwatch(lane.device, lane.stream)
        self.meter: SavedTensorMeter | None = None

    @property
    def device(self) -> torch.device:
        return self.lane.device

    def begin(self, parent: SavedTensorMeter | None = None, constants: list[Tensor] = ()) -> None:
        """Starts this step's timing and (CPU) memory count (not counting ``constants``, the
        batch's maps, mask and target), feeding ``parent`` too."""
        self.watch = Stopwatch(self.device, self.lane.stream)
        self.meter = self.memory.meter(parent, constants) if self.device.type == "cpu" else None

    def _measured(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        stack.enter_context(self.watch)
        if self.meter is not None:
            stack.enter_context(self.meter)
        return stack

    def forward(self, x_in: Tensor, problem: Problem) -> Tensor:
        """The module's output (with its graph) from a detached copy of ``x_in`` (B, M, *S)."""
        with self._measured():
            return self.chain(problem, x_in.detach())

    def update(self, out: Tensor, target: Tensor, problem: Problem | None = None) -> Tensor:
        """Local loss of ``out`` against ``target``, backward, optimizer and scheduler step
        (``problem``: for a ``readout`` that needs it)."""
        with self._measured():
            self.updater.zero_grad()
            loss = self.loss_fn(out if self.readout is None else self.readout(out, problem), target)
            loss.backward()
            self.updater.step()
        return loss.detach()

    def step(self, x_in: Tensor, problem: Problem, target: Tensor) -> tuple[Tensor, Tensor]:
        """forward + update: (detached output (B, M, *S), 0-dim loss)."""
        out = self.forward(x_in, problem)
        return out.detach(), self.update(out, target, problem)


class Gleam(Strategy):
    """Args (besides :class:`Strategy`'s): ``modules`` M (divides the unrolls); ``devices`` the
    lanes (default: the main device); ``overlap`` issue order: True interleaves module m's
    update after module m+1's forward, False runs modules strictly one after the other (least
    memory on one device), "auto" overlaps when there is more than one lane."""

    name = "gleam"

    def __init__(self, model: UnrolledNet, loss_fn: LossFn, optim: OptimizerConfig, total: int, device,
                 modules: int = 1, devices: list[str] | None = None, overlap: bool | str = "auto") -> None:
        super().__init__(model, loss_fn, optim, total, device)
        if overlap not in (True, False, "auto"):
            raise ValueError(f"gleam.overlap must be true, false or 'auto', got {overlap!r}")
        names = devices or [str(self.device)]
        self.lanes = [Lane(parse_device(d, f"gleam.devices[{i}]")) for i, d in enumerate(names)]
        if len({lane.device.type for lane in self.lanes}) > 1:
            # Host-side memory metering and non-blocking device-to-host hand-offs assume one kind.
            raise ValueError(f"gleam.devices: {names} mixes CPU and CUDA devices; use all cpu or all cuda:N")
        self.units = [GleamUnit(m, chain, loss_fn, optim, total, self.lanes[m % len(self.lanes)], model.readout)
                      for m, chain in enumerate(model.split(modules))]
        self.overlap = len(self.lanes) > 1 if overlap == "auto" else overlap

    @property
    def num_modules(self) -> int:
        return len(self.units)

    def _per_device(self, problem: Problem, target: Tensor) -> tuple[dict, dict]:
        problems, targets = {}, {}
        for lane in self.lanes:
            if lane.device not in problems:
                problems[lane.device] = problem.to(lane.device)
                targets[lane.device] = target.to(lane.device, non_blocking=True)
        return problems, targets

    def train_step(self, problem: Problem, target: Tensor) -> StepResult:
        problems, targets = self._per_device(problem, target)
        cuda = [lane.device for lane in self.lanes if lane.device.type == "cuda"]
        step_meter = SavedTensorMeter() if len(cuda) < len(self.lanes) else None
        losses: list[Tensor | None] = [None] * len(self.units)
        keep: list[Tensor] = []  # hand-offs stay alive until the lanes rejoin (cross-stream reuse)

        def update(unit: GleamUnit, out: Tensor) -> None:
            with unit.lane.context():
                losses[unit.index] = unit.update(out, targets[unit.device], problems[unit.device])

        with cuda_peaks(cuda) if cuda else contextlib.nullcontext({"peak": 0}) as gpu:
            for lane in self.lanes:
                lane.follow_default()
            x, ready, pending = self.model.start(problems[self.units[0].device]), None, None
            for unit in self.units:
                unit.begin(step_meter, problems[unit.device].constants() + [targets[unit.device]])
                with unit.lane.context():
                    unit.lane.wait(ready)
                    x_in = x.to(unit.device, non_blocking=True)
                    out = unit.forward(x_in, problems[unit.device])
                    x = out.detach()
                    ready = unit.lane.record()
                keep += [x_in, x]
                if pending is not None:
                    update(*pending)
                pending = (unit, out)
                if not self.overlap:
                    update(*pending)
                    pending = None
            if pending is not None:
                update(*pending)
            for lane in self.lanes:
                lane.join_default()
        memory = [u.meter.peak for u in self.units] if step_meter is not None else None
        peak = max(gpu["peak"], step_meter.peak if step_meter is not None else 0)
        return StepResult(losses, [u.watch for u in self.units], memory if not cuda else None, peak)

    @torch.no_grad()
    def reconstruct(self, problem: Problem) -> Tensor:
        problems: dict[torch.device, Problem] = {}
        x, p = self.model.start(problem), problem
        for unit in self.units:
            p = problems.setdefault(unit.device, problem.to(unit.device))
            x = unit.chain(p, x.to(unit.device))
        return self.model.readout(x, p).to(self.device)

    def lrs(self) -> list[float]:
        return [u.updater.lr for u in self.units]

    def state_dict(self) -> dict:
        return {"updaters": [u.updater.state_dict() for u in self.units]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["updaters"]) != len(self.units):
            raise ValueError(f"checkpoint has {len(state['updaters'])} module optimizers, this gleam run has "
                             f"{len(self.units)} modules (gleam.modules must match the checkpoint)")
        for unit, s in zip(self.units, state["updaters"]):
            unit.updater.load_state_dict(s)
