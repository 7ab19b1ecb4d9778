"""One pipeline stage: this rank's GLEAM modules, their hand-off queues and optional replay.

A stage is the single-process GLEAM :class:`~gleam_core.train.strategies.Pipeline` over the
contiguous modules ``layout.modules_of(stage)``, on this rank's device (each with its own
optimizer and schedule, wrapped in DistributedDataParallel over the stage's replicas when there
are several), whose first module receives the previous stage's hand-off (stage 0: the batch's
``A^H y``) and whose last module's detached output goes to the next stage right after its
forward, before that module's backward and optimizer step, so the next stage starts while this
one updates. Same units, same issue order, same queue rule (``gleam.queue_depth``) as one
process: with one replica the weights are bitwise those of a single-process run on the same
batches, whatever the queue depth.
"""

from __future__ import annotations

import contextlib
import inspect

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from ...models import Problem, UnrolledNet
from ..losses import LossFn
from ..spec import Spec
from ..strategies import GleamUnit, Lane, Pipeline, StepResult
from .handoff import PeerFailure, Receiver, Sender, failure_kind
from .replay import ReplayBuffer
from .world import World

# The models' buffers are constants (fixed DC steps): no broadcast before every forward
# (``forward_sync_buffers`` replaces ``broadcast_buffers`` in newer torch).
_NO_BUFFER_SYNC = ({"forward_sync_buffers": False}
                   if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters
                   else {"broadcast_buffers": False})


class CurrentStreamLane(Lane):
    """A lane on the current stream (a stage runs its modules in order on one device)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = None


def to_cpu(obj):
    """A copy of nested state (dicts, lists, tuples) with every tensor on the CPU."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


class Stage(Pipeline):
    """This rank's part of the pipeline.

    Args:
        world: this rank's world (layout, device, groups).
        model: the whole network (built identically on every rank, so initial weights agree);
            only this stage's modules move to ``world.device`` and train here.
        spec: the run's spec (gleam.modules, gleam.queue_depth, optimizer, replay, seed).
        loss_fn: the local loss (pred, target) -> 0-dim.
        total: iterations (for the LR schedules).
        status: optional ``on_wait`` hook of the hand-off endpoints (see :class:`.reporting.Status`).
    """

    def __init__(self, world: World, model: UnrolledNet, spec: Spec, loss_fn: LossFn, total: int,
                 status=None) -> None:
        self.world = world
        chains = model.split(spec.gleam.modules)
        self.modules = world.layout.modules_of(world.stage)
        lane = CurrentStreamLane(world.device)
        units = [GleamUnit(m, chains[m], loss_fn, spec.optimizer, total, lane, spec.precision == "fp16")
                 for m in self.modules]
        self.chains = [chains[m] for m in self.modules]  # unwrapped, for inference and state
        if world.stage_group is not None:
            for unit in units:
                unit.chain = DistributedDataParallel(unit.chain, process_group=world.stage_group, **_NO_BUFFER_SYNC)
        on_wait = status.waiting if status is not None else None
        self.inbox = Receiver(world, world.prev_rank, on_wait) if not world.first else None
        self.outbox = Sender(world, world.next_rank, spec.gleam.queue_depth, on_wait) if not world.last \
            else None
        super().__init__(units, overlap=False, queue_depth=spec.gleam.queue_depth,
                         receive=self._input, send=self.outbox.send if self.outbox is not None else None)
        r = spec.distributed.replay
        self.replay = [ReplayBuffer(r.size, r.steps, seed=spec.seed * 1_000_003 + 1009 * m + world.replica)
                       for m in self.modules] if r.enabled else None

    @property
    def device(self) -> torch.device:
        return self.world.device

    def wait_s(self) -> float:
        """Seconds blocked on hand-offs and credits so far."""
        return (self.inbox.wait_s if self.inbox else 0.0) + (self.outbox.wait_s if self.outbox else 0.0)

    def _input(self, problem: Problem) -> Tensor:
        return problem.ahy if self.inbox is None else self.inbox.recv(problem.ahy)

    def _update(self, i: int, unit: GleamUnit, x_in: Tensor, out: Tensor, problem: Problem,
                target: Tensor) -> Tensor:
        with self._all_reduce_errors(unit):
            loss = super()._update(i, unit, x_in, out, problem, target)
            if self.replay is not None:
                self.replay[i].add(x_in, problem, target)
                self.replay[i].replay(unit)
        return loss

    def train_step(self, problem: Problem, target: Tensor) -> StepResult:
        """One batch through this stage's modules (:meth:`Pipeline.step`); losses of this
        stage's modules only."""
        result = self.step(problem, target)
        if self.outbox is not None:
            self.outbox.poll()
        return result

    @contextlib.contextmanager
    def _all_reduce_errors(self, unit: GleamUnit):
        """Names the replicas when DistributedDataParallel's gradient all-reduce fails."""
        if self.world.stage_group is None:
            yield
            return
        try:
            yield
        except Exception as exc:  # noqa: BLE001 (backend errors surface from backward)
            cause, hang = failure_kind(exc)
            w = self.world
            others = ", ".join(w.describe(r) for r in w.layout.stage_ranks(w.stage) if r != w.rank)
            limit = f" (distributed.timeout_s={w.timeout_s:g})" if hang else ""
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise PeerFailure(f"{w.describe()}: the gradient all-reduce of module {unit.index} with the other "
                              f"replicas of stage {w.stage} ({others}) failed{limit}: {cause}. Backend message: "
                              f"{first}", None, hang) from exc

    @torch.no_grad()
    def infer(self, problem: Problem) -> Tensor | None:
        """Inference through this stage's modules; the reconstruction on the last stage, None elsewhere."""
        x = self._input(problem)
        for chain in self.chains:
            x = chain(problem, x)
        if self.outbox is not None:
            self.outbox.send(x)
            return None
        return x

    def drain(self) -> None:
        """Waits until every hand-off and credit of this stage has been taken."""
        if self.outbox is not None:
            self.outbox.drain()
        if self.inbox is not None:
            self.inbox.drain()

    def lrs(self) -> list[float]:
        return [u.updater.lr for u in self.units]

    def module_states(self) -> dict[int, dict]:
        """{module index: its chain's state dict} on the CPU."""
        return {m: to_cpu(chain.state_dict()) for m, chain in zip(self.modules, self.chains)}

    def updater_states(self) -> dict[int, dict]:
        """{module index: optimizer and scheduler state} on the CPU."""
        return {m: to_cpu(u.updater.state_dict()) for m, u in zip(self.modules, self.units)}

    def review(self, stats) -> None:
        """Nothing to check beyond the losses, which the trainer checks."""

    def load_state_dict(self, state: dict) -> None:
        """Loads this stage's entries of a checkpoint's per-module updater states (``state["updaters"]``)."""
        states = state["updaters"]
        if len(states) != self.world.layout.modules:
            raise ValueError(f"checkpoint has {len(states)} module optimizers, this gleam run has "
                             f"{self.world.layout.modules} modules (gleam.modules must match the checkpoint)")
        for m, unit in zip(self.modules, self.units):
            unit.updater.load_state_dict(states[m])
