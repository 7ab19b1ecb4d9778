"""Reading what training wrote: checkpoint files (``<run>/checkpoints/iter_<NNNNNNNN>.pt``) and
the trained network inside them.

Training writes checkpoints (:mod:`gleam_core.train.checkpoints`) with the format defined here;
inference needs only this module, so a deployed reconstruction never imports the trainer.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import torch

from ..models import UnrolledNet

FORMAT = "gleam-checkpoint/1"
_NAME = re.compile(r"iter_(\d{8})\.pt$")
BEST_NAME = "best.pt"


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's checkpoints, oldest first."""
    d = checkpoint_dir(run_dir)
    found = [(int(m.group(1)), p) for p in d.glob("iter_*.pt") if (m := _NAME.search(p.name))] if d.is_dir() else []
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def best_checkpoint(run_dir: str | Path) -> Path | None:
    """The run's best-validation checkpoint, if one was kept."""
    path = checkpoint_dir(run_dir) / BEST_NAME
    return path if path.is_file() else None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Reads a checkpoint (tensors only, no pickled code); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; its end record is the last thing written
        raise RuntimeError(f"{str(path)!r} is not a GLEAM checkpoint: not a file written by torch.save, or truncated")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files; its first line says why
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RuntimeError(f"{str(path)!r} is not a readable GLEAM checkpoint ({reason})") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise RuntimeError(f"{str(path)!r} is not a GLEAM checkpoint (format {got!r}, expected {FORMAT!r})")
    return state


def resolve_checkpoint(run_or_file: str | Path) -> Path:
    """A checkpoint file itself, or a run directory's best-validation checkpoint (its latest
    when the run kept no best)."""
    p = Path(run_or_file)
    if p.is_dir() and p.name == "checkpoints" and not checkpoint_dir(p).is_dir():
        p = p.parent  # the run's checkpoint folder itself
    if p.is_dir():
        best = best_checkpoint(p)
        if best is not None:
            return best
        latest = latest_checkpoint(p)
        if latest is None:
            raise FileNotFoundError(f"run directory {str(p)!r} has no checkpoints in {str(checkpoint_dir(p))!r}")
        return latest
    return p


def describe_checkpoint(path: Path, state: dict) -> str:
    """Which checkpoint a tool read, for its users: ``"runs/x/checkpoints/best.pt (best
    validation psnr 24.31 dB at iteration 400)"`` or ``"... (iteration 600)"``."""
    best = state.get("best")
    if path.name == BEST_NAME and isinstance(best, dict):
        return (f"{path} (best validation {best['metric']} {best['value']:.2f} dB at iteration "
                f"{state.get('iteration')})")
    return f"{path} (iteration {state.get('iteration')})"


def load_model(run_or_file: str | Path, device: str | torch.device = "cpu") -> tuple[UnrolledNet, dict]:
    """The trained network of a checkpoint (or a run's best, else latest), in eval mode on ``device``, and the
    checkpoint's contents. Every strategy saves the whole network (GLEAM: all its modules), so
    the model returned runs the whole chain."""
    state = load_checkpoint(resolve_checkpoint(run_or_file))
    model = UnrolledNet.from_description(state["model_description"])
    model.load_state_dict(state["model"])
    return model.to(device).eval(), state
