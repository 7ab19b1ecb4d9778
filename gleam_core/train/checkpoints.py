"""Training checkpoints in ``<run>/checkpoints/iter_<NNNNNNNN>.pt``, written atomically, the
last ``keep_last`` kept, and ``<run>/checkpoints/best.pt``: the one of the best validation
score so far (its ``best`` entry names the metric, value and iteration), which gleam-eval and
gleam-recon read by default from a run directory.

A checkpoint holds everything a resumed run needs to continue exactly as if uninterrupted:
the model's weights and description, the strategy's optimizer and scheduler states (one per
GLEAM module), the data stream's position, the RNG states, and the resolved spec.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_torch_save
# Reading checkpoints is inference's business; training writes what gleam_core.recon reads.
from ..recon.loading import (BEST_NAME, FORMAT, best_checkpoint, checkpoint_dir,  # noqa: F401
                             describe_checkpoint, latest_checkpoint, list_checkpoints, load_checkpoint, load_model,
                             resolve_checkpoint)


class TrainingDiverged(RuntimeError):
    """A loss or the weights became NaN or infinite; the run stopped without writing a checkpoint."""


def check_losses_finite(losses: Sequence[float], modules: Sequence[int], iteration: int,
                        saved_iteration: int | None, run_dir: Path, where: str = "") -> None:
    """Raises :class:`TrainingDiverged` naming the first module whose loss is NaN/inf at step
    ``iteration`` (0-based, before the step), the last good checkpoint, and what to try next.
    ``where`` (e.g. the rank and stage) is appended to the module's name."""
    bad = [(m, v) for m, v in zip(modules, losses) if not math.isfinite(v)]
    if not bad:
        return
    m, v = bad[0]
    who = (f"module {m}" if len(losses) > 1 or where else "the network") + (f" on {where}" if where else "")
    if saved_iteration is not None:
        last = f"the last good checkpoint is iteration {saved_iteration} in {run_dir / 'checkpoints'} (untouched)"
        then = "then --resume or start again"
    else:
        last, then = "no checkpoint was written yet", "then start again"
    raise TrainingDiverged(f"iteration {iteration + 1}: the loss of {who} is {v}; training stopped and {last}. "
                           f"Lower optimizer.lr or set optimizer.grad_clip, {then}.")


def save_checkpoint(run_dir: str | Path, iteration: int, payload: dict, keep_last: int, best: bool = False) -> Path:
    """Writes ``payload`` (plus format and iteration) atomically; deletes all but the newest ``keep_last``.
    With ``best`` it writes (replaces) ``best.pt`` instead and deletes nothing.
    Refuses (:class:`TrainingDiverged`) weights ``payload["model"]`` that are not all finite, so a
    finite loss over NaN gradients never replaces the last good checkpoint."""
    bad = [k for k, v in payload.get("model", {}).items()
           if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        last = latest_checkpoint(run_dir)
        raise TrainingDiverged(f"iteration {iteration}: non-finite weights in {', '.join(bad[:3])}"
                               f"{' ...' if len(bad) > 3 else ''}; no checkpoint written, the last good one is "
                               f"{last if last is not None else '(none yet)'}. Lower optimizer.lr or set "
                               "optimizer.grad_clip.")
    path = checkpoint_dir(run_dir) / (BEST_NAME if best else f"iter_{iteration:08d}.pt")
    atomic_torch_save({"format": FORMAT, "iteration": iteration, **payload}, path)
    if best:
        return path
    for old in list_checkpoints(run_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def rng_state() -> dict:
    """torch (CPU and CUDA), numpy and Python RNG states, as tensors and plain data."""
    np_state = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(), "python": [version, list(internal), gauss_next],
             "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                       "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
