"""Counting device-to-host reads by patching: ``item``, ``tolist``, ``numpy``, ``float()``,
``bool()``, ``int()``, ``__index__`` of tensors and the CUDA synchronizes, attributed to the
project file that made them (torch.optim's reads of its CPU step counters and the data
pipeline excluded)."""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from pathlib import Path

import torch

import gleam_core

PACKAGE = Path(gleam_core.__file__).resolve().parent
# Where the data come from, not the training step: readers, masks, collation, batch order.
DATA_FILES = ("data/", "train/batches.py", "train/datasets.py")

READS = [(torch.Tensor, name) for name in ("item", "tolist", "numpy", "__float__", "__bool__", "__int__",
                                            "__index__")]
READS += [(torch.cuda, "synchronize"), (torch.cuda.Event, "synchronize"), (torch.cuda.Stream, "synchronize")]


def _caller() -> str | None:
    """The project file (relative to the package) of the innermost project frame calling; None
    outside the project and for torch.optim's reads of its step counters, which are CPU
    tensors whatever the parameters' device (not device reads)."""
    frame = sys._getframe(2)
    if f"{Path('torch', 'optim')}" in frame.f_code.co_filename:
        return None
    while frame is not None:
        path = Path(frame.f_code.co_filename).resolve()
        if PACKAGE in path.parents:
            return str(path.relative_to(PACKAGE))
        frame = frame.f_back
    return None


@contextlib.contextmanager
def counting_reads():
    """Counts device-to-host reads made from project code (outside the data pipeline), by file."""
    counts: Counter = Counter()

    def wrap(original):
        def counted(*args, **kwargs):
            where = _caller()
            if where is not None and not where.startswith(DATA_FILES):
                counts[where] += 1
            return original(*args, **kwargs)
        return counted

    saved = [(owner, name, getattr(owner, name)) for owner, name in READS]
    try:
        for owner, name, original in saved:
            setattr(owner, name, wrap(original))
        yield counts
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


