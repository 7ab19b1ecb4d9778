"""The one GLEAM pipeline: module units, the hand-off queues between them and the issue order of
a training step, used by the single-process ``gleam`` strategy and by each distributed stage.

Per batch, for each module in order: the previous module's detached output (module 0: ``A^H y``,
or, on a later stage, the hand-off from the previous rank) is passed on to this module's lane,
the module runs its forward, its output is handed on at once, and its backward and optimizer
step follow: right away (``overlap`` False: the least memory on one device) or after the next
module's forward has been issued (``overlap`` True: module m's update runs while module m+1's
forward does, on another stream or device). Nothing waits for the end of a step: with several
lanes, module 0 starts batch t+1 while later modules are still on batch t, at most
``queue_depth`` hand-offs ahead of the module it feeds, whether that module is on another
stream, another device (:class:`~.lanes.LaneLink`) or another rank (the distributed stage's
queues). The arithmetic does not depend on any of this: every module computes the same
function of the same inputs, so on the CPU results are bitwise equal for every lane layout,
overlap and depth.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ...models import Problem, UnrollChain
from ..losses import LossFn
from ..memory import SavedTensorMeter, StepMemory, cuda_peaks
from ..optim import OptimizerConfig, Updater
from ..timing import Stopwatch
from .base import StepResult
from .lanes import Lane, LaneLink


class GleamUnit:
    """One GLEAM module: K unrolls, their optimizer and schedule (and, under fp16, gradient
    scaler), the local loss, one lane.

    :meth:`forward` takes the previous module's output (or ``model.start(problem)``, e.g.
    ``problem.ahy``, for module 0) and :meth:`update` makes the module's step on its local loss;
    the pipeline interleaves them. ``readout`` (state, problem) -> image turns a chain state into
    the image the loss compares (None: the state is the image; VarNet's state is k-space + maps).
    """

    def __init__(self, index: int, chain: UnrollChain, loss_fn: LossFn, optim: OptimizerConfig, total: int,
                 lane: Lane, scale_grads: bool = False,
                 readout: Callable[[Tensor, Problem], Tensor] | None = None) -> None:
        self.index, self.lane = index, lane
        self.readout = readout
        self.chain = chain.to(lane.device)
        self.loss_fn = loss_fn
        self.updater = Updater(chain.parameters(), optim, total, scale_grads)  # fp16: a scaler per module
        self.memory = StepMemory(lane.device, chain.parameters())
        self.watch = Stopwatch(lane.device, lane.stream)
        self.meter: SavedTensorMeter | None = None

    @property
    def device(self) -> torch.device:
        return self.lane.device

    def begin(self, parent: SavedTensorMeter | None = None, constants: Sequence[Tensor] = ()) -> None:
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
        """Local loss of ``out`` against ``target``, backward, optimizer and scheduler step;
        the detached 0-dim loss (left on the device: read at the logging interval). ``problem``:
        for a ``readout`` that needs it."""
        with self._measured():
            self.updater.zero_grad()
            loss = self.loss_fn(out if self.readout is None else self.readout(out, problem), target)
            self.updater.backward(loss)
            self.updater.step()
        return loss.detach()


class Pipeline:
    """A run of consecutive GLEAM modules and the queues between them.

    Args:
        units: the modules, in order (all of the network's, or one stage's).
        overlap: issue module m's update after module m+1's forward (see the module docstring).
        queue_depth: hand-offs a module may have produced that the next module has not taken.
        receive: the first unit's input from the batch's problem on its device (default:
            ``problem.ahy``; a later distributed stage: the previous rank's hand-off).
        send: called with the last unit's detached output right after its forward (a
            distributed stage that is not the last: the hand-off to the next rank).
    """

    def __init__(self, units: Sequence[GleamUnit], overlap: bool, queue_depth: int = 1,
                 receive: Callable[[Problem], Tensor] | None = None,
                 send: Callable[[Tensor], None] | None = None) -> None:
        self.units = list(units)
        self.overlap = overlap
        self.links = [LaneLink(a.lane, b.lane, queue_depth) for a, b in zip(self.units, self.units[1:])]
        self.lanes = list({id(u.lane): u.lane for u in self.units}.values())
        self.receive = receive if receive is not None else (lambda problem: problem.ahy)
        self.send = send

    def _per_device(self, problem: Problem, target: Tensor) -> tuple[dict, dict]:
        problems, targets = {}, {}
        for lane in self.lanes:
            if lane.device not in problems:
                problems[lane.device] = problem.to(lane.device)
                targets[lane.device] = target.to(lane.device, non_blocking=True)
        return problems, targets

    def _update(self, i: int, unit: GleamUnit, x_in: Tensor, out: Tensor, problem: Problem,
                target: Tensor) -> Tensor:
        """Module ``i``'s update on its lane; a distributed stage adds replay and error naming."""
        with unit.lane.context():
            return unit.update(out, target, problem)

    def step(self, problem: Problem, target: Tensor) -> StepResult:
        """One batch through these modules; ``target`` (B, M, *S) complex. Issues the work and
        returns at once: losses and timings stay on the devices."""
        problems, targets = self._per_device(problem, target)
        # The first input is made on the default stream (VarNet's start computes on the batch),
        # so it is made before the lanes' wait point and kept alive for the first lane.
        x = self.receive(problems[self.units[0].device])
        first = self.units[0].lane
        for lane in self.lanes:
            mine = [x] if lane is first else []
            lane.follow_default([*problems[lane.device].tensors(), targets[lane.device], *mine])
        cuda = [lane.device for lane in self.lanes if lane.device.type == "cuda"]
        step_meter = SavedTensorMeter() if len(cuda) < len(self.lanes) else None
        losses: list[Tensor | None] = [None] * len(self.units)
        pending: tuple | None = None
        with cuda_peaks(cuda) if cuda else contextlib.nullcontext({"peak": 0}) as gpu:
            for i, unit in enumerate(self.units):
                p, t = problems[unit.device], targets[unit.device]
                unit.begin(step_meter, [*p.constants(), t])
                x_in = self.links[i - 1].pass_on(x) if i > 0 else x
                if i < len(self.links):
                    self.links[i].reserve()
                with unit.lane.context():
                    out = unit.forward(x_in, p)
                x = out.detach()
                if i == len(self.units) - 1 and self.send is not None:
                    self.send(x)
                if pending is not None:
                    losses[pending[0]] = self._update(*pending)
                pending = (i, unit, x_in, out, p, t)
                if not self.overlap:
                    losses[i] = self._update(*pending)
                    pending = None
            if pending is not None:
                losses[pending[0]] = self._update(*pending)
        memory = [u.meter.peak for u in self.units] if step_meter is not None else None
        peak = max(gpu["peak"], step_meter.peak if step_meter is not None else 0)
        return StepResult(losses, [u.watch for u in self.units], memory if not cuda else None, peak)

    def join(self) -> None:
        """The default streams wait for every lane (before weights or losses are read there)."""
        for lane in self.lanes:
            lane.join_default()
