"""The ``distributed:`` section of a training spec (used only under ``torchrun``).

Plain dataclasses, validated by :mod:`gleam_core.train.schema` like every other section; the
rules that need the world size (``stages x replicas`` must equal it) are checked at launch by
:func:`gleam_core.train.distributed.world.Layout.from_spec`. A single-process run ignores the
section. docs/distributed.md is the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ReplayOptions:
    """DGL-style replay (off by default): every stage keeps the last ``size`` inputs of each of its
    modules (with the batch's operator and target) and, after each fresh update, makes ``steps``
    more optimizer steps on inputs drawn uniformly from that buffer (seeded; the LR schedule
    advances only on fresh batches). Buffers are not checkpointed: a resumed run starts empty."""

    enabled: bool = False
    size: int = field(default=4, metadata={"min": 1})
    steps: int = field(default=1, metadata={"min": 1})


@dataclass
class DistributedOptions:
    """How the ranks of a ``torchrun`` job map onto GLEAM modules.

    ``stages`` S pipeline stages (stage s holds a contiguous group of modules) times ``replicas``
    R data-parallel copies of the pipeline must equal the world size. Null entries are derived:
    both null -> S = the largest divisor of the world size that is at most gleam.modules, R =
    world size / S; one null -> world size divided by the other.
    The hand-off queues between stages are ``gleam.queue_depth`` deep, like those between lanes.
    ``backend``: ``auto`` (nccl when the device is CUDA, else gloo), ``gloo`` or ``nccl``.
    ``timeout_s``: a hand-off, credit or collective that takes longer ends the job with an
    error naming the rank and stage it waited for.
    """

    stages: int | None = field(default=None, metadata={"min": 1})
    replicas: int | None = field(default=None, metadata={"min": 1})
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    timeout_s: float = field(default=300.0, metadata={"min": 1.0})
    replay: ReplayOptions = field(default_factory=ReplayOptions)


def check_distributed(spec) -> None:
    """The rules of the section that do not need the world size (called by ``check_spec``)."""
    from ..schema import SpecError

    d = spec.distributed
    if d.stages is not None and spec.strategy == "gleam" and d.stages > spec.gleam.modules:
        raise SpecError("distributed.stages", f"got {d.stages}, more stages than gleam.modules={spec.gleam.modules} "
                                              f"(allowed: 1 to {spec.gleam.modules}; each stage holds at least one "
                                              "module)")
