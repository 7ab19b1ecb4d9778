"""Which files a dataset reads: directories, file lists, explicit paths; deterministic splits.

A *source* is a directory (its ``*.h5`` and ``*.mat`` files, recursively, sorted; maps
sidecars ``*.maps.h5`` and CMRxRecon mask files ``*_mask*.mat`` are not data and are left
out), a glob pattern (``data/*/train/*.h5``, ``**`` allowed), a text file (``.txt``/``.lst``: one path per line, relative to the list's folder;
``#`` starts a comment), an ``.h5`` file, or a list of these. Other files found in a
directory are reported as skipped, with the reason; directories and globs are scans (bad
files may be skipped), files and lists name their files explicitly.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..atomic import atomic_write_text
from .formats import SIDECAR_SUFFIX

Source = str | os.PathLike | Sequence[str | os.PathLike]
LIST_SUFFIXES = (".txt", ".lst")
DATA_SUFFIXES = (".h5", ".mat")  # .mat: MATLAB v7.3 (HDF5), as CMRxRecon ships its data


def is_auxiliary(path: Path) -> bool:
    """Files that go with data files but are not data: maps sidecars, CMRxRecon mask files."""
    return path.name.endswith(SIDECAR_SUFFIX) or (path.suffix == ".mat" and "_mask" in path.stem)


def _from_list(path: Path) -> list[Path]:
    files = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        p = Path(entry) if Path(entry).is_absolute() else path.parent / entry
        if not p.is_file():
            raise ValueError(f"{path}:{n}: listed file {entry!r} does not exist")
        files.append(p)
    if not files:
        raise ValueError(f"{path}: the file list is empty")
    return files


def resolve_files(source: Source) -> tuple[list[Path], list[tuple[Path, str]], bool]:
    """Returns (data files without repeats, skipped (path, reason) pairs, whether every file was
    named explicitly).

    Raises ValueError for a path that does not exist or a directory without data files.
    """
    if isinstance(source, (str, os.PathLike)):
        sources: list = [source]
    else:
        sources = list(source)
        if not sources:
            raise ValueError("source: got an empty list of files or directories")
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    explicit = True
    for s in sources:
        p = Path(s)
        if not p.exists() and glob.has_magic(str(s)):
            matches = [Path(m) for m in sorted(glob.glob(str(s), recursive=True))]
            matches = [m for m in matches if m.is_file() and not is_auxiliary(m)]
            if not matches:
                raise ValueError(f"source pattern {s!s} matches no files")
            explicit = False
            files.extend(matches)
        elif p.is_dir():
            explicit = False
            found = []
            for q in sorted(p.rglob("*")):
                if not q.is_file() or is_auxiliary(q) or q.name.startswith("."):
                    continue
                if q.suffix in DATA_SUFFIXES:
                    found.append(q)
                else:
                    skipped.append((q, "not an .h5 or .mat file"))
            if not found:
                raise ValueError(f"source directory {p} contains no .h5 or .mat data files"
                                 + (f" (skipped: {', '.join(q.name for q, _ in skipped)})" if skipped else ""))
            files.extend(found)
        elif p.is_file() and p.suffix in LIST_SUFFIXES:
            files.extend(_from_list(p))
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"source {p} does not exist (expected a directory, an .h5 file or a .txt file list)")
    unique = list({f.resolve(): f for f in files}.values())  # a file named twice is read once
    return unique, skipped, explicit


def split_files(files: Sequence[str | os.PathLike], val_fraction: float, seed: int = 0
                ) -> tuple[list[Path], list[Path]]:
    """Deterministic (train, val) split by a hash of each file name and ``seed``; a file's side
    does not change when other files are added or removed."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction!r}")
    train, val = [], []
    for f in files:
        p = Path(f)
        h = int.from_bytes(hashlib.sha256(f"{seed}:{p.name}".encode()).digest()[:8], "little") / 2.0 ** 64
        (val if h < val_fraction else train).append(p)
    return train, val


def write_file_list(path: str | os.PathLike, files: Sequence[str | os.PathLike]) -> None:
    """Writes a file list (paths relative to the list's folder when possible), atomically."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for f in files:
        p = Path(f).resolve()
        try:
            lines.append(str(p.relative_to(out.parent.resolve())))
        except ValueError:
            lines.append(str(p))
    atomic_write_text(out, "".join(line + "\n" for line in lines))
