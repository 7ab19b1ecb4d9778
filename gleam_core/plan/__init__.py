"""``gleam_core.plan``: what fits and what is fastest.

:func:`estimate_step_memory` (full memory of one training step, on fake tensors), the
candidate configurations of a spec (:mod:`.candidates`), their relative time per iteration
(:mod:`.timing`) and the choice under a memory budget (:mod:`.choice`): what ``gleam-plan``
prints and what ``strategy: auto`` trains with. See docs/planning.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "MemoryReport": "accounting", "estimate_step_memory": "accounting", "configure": "accounting",
    "Geometry": "geometry", "geometry_of": "geometry", "FULL_SCALE": "geometry",
    "Candidate": "candidates", "candidates_of": "candidates",
    "Plan": "choice", "plan": "choice", "max_unrolls": "choice", "resolve_auto": "choice",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    # Lazy: the planner imports the training package, which resolves `strategy: auto` through it.
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
