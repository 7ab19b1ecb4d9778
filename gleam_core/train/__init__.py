"""``gleam_core.train``: training of unrolled networks from a validated spec.

:mod:`.spec` (the ``gleam-train`` spec and its validation), :mod:`.strategies` (e2e,
checkpoint, invertible, gleam), :mod:`.trainer` (the loop), :mod:`.checkpoints`,
:mod:`.memory` (the saved-tensor meter), :mod:`.evaluation` (metrics per volume). See
docs/training.md.
"""

from .checkpoints import TrainingDiverged, load_model
from .spec import Spec, load_spec, parse_spec
from .trainer import Trainer

__all__ = ["Spec", "Trainer", "TrainingDiverged", "load_model", "load_spec", "parse_spec"]
