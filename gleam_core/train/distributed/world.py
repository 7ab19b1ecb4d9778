"""Who is who in a distributed run: the rank -> (stage, replica) layout, the process groups,
the device and the backend.

Layout (docs/distributed.md): ``world = S stages x R replicas``; rank ``r`` is stage
``r % S`` of replica ``r // S``, so each replica's pipeline occupies S consecutive ranks (on one
machine when S <= GPUs per node, keeping the per-batch hand-offs inside the machine), and
rank 0 is stage 0 of replica 0. Stage s holds a contiguous group of the M modules, as even as
possible (``M // S`` each, the first ``M % S`` stages one more): with S dividing M that is the
same load per stage as placing module m on stage m mod S, with S - 1 hand-offs per batch
instead of M - 1 and no cycle in the pipeline (so bounded queues cannot deadlock).

Process groups: the default group (``backend``) carries the point-to-point hand-offs and
``credit_group`` (same backend, all ranks) their acknowledgements; one group per stage over its
R replicas (same backend) carries DistributedDataParallel's gradient all-reduce; a gloo group
over all ranks (``control``) carries checkpoint gathers, validation results and monitored
barriers (gloo, so object collectives and ``monitored_barrier`` work whatever the backend).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ..schema import SpecError
from .config import DistributedOptions


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (or by hand with the same environment:
    ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def restart_count() -> int:
    """How many times torchrun's elastic agent restarted the workers (``--max-restarts``)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


@dataclass(frozen=True)
class Layout:
    """``stages`` x ``replicas`` ranks over ``modules`` GLEAM modules."""

    stages: int
    replicas: int
    modules: int

    @property
    def world_size(self) -> int:
        return self.stages * self.replicas

    @classmethod
    def from_spec(cls, options: DistributedOptions, modules: int, world_size: int) -> "Layout":
        """Resolves null entries and checks ``stages x replicas == world_size`` and
        ``stages <= modules``; errors are :class:`SpecError` naming the keys."""
        s, r = options.stages, options.replicas
        if s is None and r is None:  # as many stages as possible, the rest replicas
            s = max(a for a in range(1, min(world_size, modules) + 1) if world_size % a == 0)
        if s is None:
            if world_size % r:
                raise SpecError("distributed.replicas", f"got {r}, which does not divide the world size "
                                                        f"{world_size} (torchrun ranks)")
            s = world_size // r
        if r is None:
            if world_size % s:
                raise SpecError("distributed.stages", f"got {s}, which does not divide the world size {world_size} "
                                                      "(torchrun ranks)")
            r = world_size // s
        if s * r != world_size:
            raise SpecError("distributed", f"stages {s} x replicas {r} = {s * r} ranks, but torchrun started "
                                           f"{world_size} (WORLD_SIZE); allowed: stages x replicas = {world_size}, "
                                           "e.g. " + " or ".join(f"(stages {a}, replicas {world_size // a})"
                                                                 for a in range(1, world_size + 1)
                                                                 if world_size % a == 0 and a <= modules))
        if s > modules:
            raise SpecError("distributed.stages", f"got {s} stages for gleam.modules={modules} (allowed: 1 to "
                                                  f"{modules}; each stage holds at least one module)")
        return cls(s, r, modules)

    def stage_of(self, rank: int) -> int:
        return rank % self.stages

    def replica_of(self, rank: int) -> int:
        return rank // self.stages

    def rank_of(self, stage: int, replica: int) -> int:
        return replica * self.stages + stage

    def modules_of(self, stage: int) -> list[int]:
        """The contiguous module indices held by ``stage``."""
        base, extra = divmod(self.modules, self.stages)
        first = stage * base + min(stage, extra)
        return list(range(first, first + base + (1 if stage < extra else 0)))

    def stage_of_module(self, module: int) -> int:
        return next(s for s in range(self.stages) if module in self.modules_of(s))

    def stage_ranks(self, stage: int) -> list[int]:
        """The ranks of one stage (its data-parallel group)."""
        return [self.rank_of(stage, q) for q in range(self.replicas)]

    def describe(self, rank: int) -> str:
        """``rank 1 (stage 1, replica 0)``."""
        return f"rank {rank} (stage {self.stage_of(rank)}, replica {self.replica_of(rank)})"

    def table(self) -> str:
        """One line per rank: stage, replica, modules."""
        return "\n".join(f"  {self.describe(r)}: modules {self.modules_of(self.stage_of(r))}"
                         for r in range(self.world_size))


@dataclass
class World:
    """This process's place in the job.

    ``device``: ``cuda:LOCAL_RANK`` when the spec's device is CUDA, else the CPU. ``control``:
    the gloo group over all ranks; ``stage_group``: this stage's data-parallel group (None with
    one replica); ``credit_group``: hand-off acknowledgements.
    """

    layout: Layout
    rank: int
    local_rank: int
    device: torch.device
    backend: str
    timeout_s: float
    control: object = None
    stage_group: object = None
    credit_group: object = None
    store: object = None
    owns_process_group: bool = field(default=False)

    @property
    def size(self) -> int:
        return self.layout.world_size

    @property
    def stage(self) -> int:
        return self.layout.stage_of(self.rank)

    @property
    def replica(self) -> int:
        return self.layout.replica_of(self.rank)

    @property
    def first(self) -> bool:
        """First pipeline stage (reads A^H y from its own batch)."""
        return self.stage == 0

    @property
    def last(self) -> bool:
        """Last pipeline stage (scores validation reconstructions)."""
        return self.stage == self.layout.stages - 1

    @property
    def prev_rank(self) -> int | None:
        return None if self.first else self.layout.rank_of(self.stage - 1, self.replica)

    @property
    def next_rank(self) -> int | None:
        return None if self.last else self.layout.rank_of(self.stage + 1, self.replica)

    @property
    def comm_device(self) -> torch.device:
        """Where point-to-point tensors live: the GPU for NCCL, the CPU for gloo."""
        return self.device if self.backend == "nccl" else torch.device("cpu")

    def describe(self, rank: int | None = None) -> str:
        return self.layout.describe(self.rank if rank is None else rank)

    def timeout(self) -> datetime.timedelta:
        return datetime.timedelta(seconds=self.timeout_s)


def choose_device(spec_device: str, local_rank: int) -> torch.device:
    """``cuda:LOCAL_RANK`` for a CUDA spec device (each rank one GPU), else the CPU."""
    kind = torch.device(spec_device).type
    if kind != "cuda":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SpecError("device", f"got {spec_device!r} but no CUDA device is available on this machine")
    if local_rank >= torch.cuda.device_count():
        raise SpecError("device", f"LOCAL_RANK {local_rank} needs GPU {local_rank}, but this machine has "
                                  f"{torch.cuda.device_count()}; start at most that many processes per node "
                                  "(torchrun --nproc-per-node)")
    return torch.device("cuda", local_rank)


def choose_backend(requested: str, device: torch.device) -> str:
    if requested == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if requested == "nccl" and device.type != "cuda":
        raise SpecError("distributed.backend", "got 'nccl', which needs CUDA devices (device: cuda); allowed on "
                                               "the CPU: 'gloo' or 'auto'")
    if requested == "nccl" and not dist.is_nccl_available():
        raise SpecError("distributed.backend", "got 'nccl', but this torch build has no NCCL; use 'gloo' or 'auto'")
    return requested


def layout_from_env(options: DistributedOptions, modules: int) -> tuple[Layout, int, int]:
    """The layout, rank and local rank of this process from torchrun's environment."""
    world_size, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    return Layout.from_spec(options, modules, world_size), rank, local_rank


def job_store(rank: int, world_size: int, timeout: datetime.timedelta) -> "dist.Store":
    """The job's key-value store (``MASTER_ADDR:MASTER_PORT``), under a prefix per elastic attempt.

    torchrun keeps one store for all restarts of the workers; without the prefix, the groups of
    a restarted job would read the previous attempt's (dead) addresses. Under torchrun the
    agent hosts the store (``TORCHELASTIC_USE_AGENT_STORE``); started by hand, rank 0 hosts it.
    """
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"RANK and WORLD_SIZE are set but {' and '.join(missing)} not: start distributed runs "
                           "with torchrun (or set MASTER_ADDR and MASTER_PORT), or unset RANK/WORLD_SIZE for one "
                           "process")
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    base = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                         is_master=not agent and rank == 0, timeout=timeout)
    return dist.PrefixStore(f"gleam_attempt_{restart_count()}/", base)


def init_world(layout: Layout, rank: int, local_rank: int, spec_device: str, options: DistributedOptions,
               store: "dist.Store | None" = None) -> World:
    """Joins (or, when ``store`` is given, creates) the default process group and builds the
    stage and control groups. Every rank must call this with the same layout."""
    device = choose_device(spec_device, local_rank)
    backend = choose_backend(options.backend, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=options.timeout_s)
    owns = False
    if not dist.is_initialized():
        store = store if store is not None else job_store(rank, layout.world_size, timeout)
        kwargs = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, store=store, rank=rank, world_size=layout.world_size, timeout=timeout,
                                **kwargs)
        owns = True
    if dist.get_world_size() != layout.world_size:
        raise SpecError("distributed", f"the process group has {dist.get_world_size()} ranks, the layout "
                                       f"{layout.stages} x {layout.replicas} needs {layout.world_size}")
    # Every rank creates every group, in the same order (a torch.distributed requirement).
    everyone = list(range(layout.world_size))
    control = dist.new_group(everyone, backend="gloo", timeout=timeout)
    # Credits travel in their own group: with NCCL, sends and receives between two ranks in one
    # communicator share a stream, so credits queued behind hand-offs would serialize them.
    credit_group = dist.new_group(everyone, backend=backend, timeout=timeout)
    stage_group = None
    for s in range(layout.stages):
        group = dist.new_group(layout.stage_ranks(s), backend=backend, timeout=timeout) if layout.replicas > 1 \
            else None
        if s == layout.stage_of(rank):
            stage_group = group
    base = store if store is not None else dist.distributed_c10d._get_default_store()
    return World(layout, rank, local_rank, device, backend, options.timeout_s, control, stage_group, credit_group,
                 dist.PrefixStore("gleam/", base), owns)


def shutdown(world: World) -> None:
    """Destroys the process group this module created (normal end of a run)."""
    if world.owns_process_group and dist.is_initialized():
        dist.destroy_process_group()
