"""Atomic file writes: write a temporary file in the target's directory, flush it to disk,
then ``os.replace`` it over the target, so readers never see a partial file and a crash
leaves the previous version intact."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import h5py
import torch


def _final_mode(path: Path) -> int:
    """The replaced file's permissions, or those a plain ``open(path, "w")`` would give (0666
    less the umask): mkstemp's private 0600 would hide results from a group sharing a run."""
    with contextlib.suppress(FileNotFoundError):
        return stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """``with atomic_path(path) as tmp: write(tmp)``: ``tmp`` (same directory) replaces ``path``
    only if the block succeeds; for writers that want a file name (h5py)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _final_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """``with atomic_open(path, "w") as f: ...`` replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_torch_save(obj: object, path: str | Path) -> None:
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


@contextlib.contextmanager
def atomic_h5(path: str | Path) -> Iterator[h5py.File]:
    """``with atomic_h5(path) as f: f.create_dataset(...)``: an HDF5 file that appears at ``path``
    only complete; an interrupted write leaves nothing behind."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            yield f


def output_folder(path: str | Path, name: str = "output folder") -> Path:
    """``path`` as a folder to write into (it may not exist yet); ValueError naming ``name``
    when it, or the first existing path above it, is a file."""
    out = Path(path)
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == out else f" (a parent of {out})"
                raise ValueError(f"{name} {p}{where} is a file, not a folder")
            break
    return out
