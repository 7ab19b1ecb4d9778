"""Training strategies, chosen by the spec's ``strategy:`` key.

``e2e`` (plain backprop), ``checkpoint`` (gradient checkpointing per segment of unrolls),
``invertible`` (memory-free backprop through inverted unrolls) and ``gleam`` (greedy
module-wise training, optionally overlapped on several devices/streams). All implement
:class:`Strategy`.
"""

from .base import StepResult, Strategy, WholeNetworkStrategy, resolve_steps
from .checkpoint import Checkpointed
from .e2e import EndToEnd
from .gleam import Gleam
from .invertible import Invertible
from .lanes import Lane, LaneLink, parse_device
from .pipeline import GleamUnit, Pipeline

STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (EndToEnd, Checkpointed, Invertible, Gleam)}

__all__ = ["STRATEGIES", "Checkpointed", "EndToEnd", "Gleam", "GleamUnit", "Invertible", "Lane", "LaneLink", "Pipeline",
           "StepResult", "Strategy", "WholeNetworkStrategy", "parse_device", "resolve_steps"]
