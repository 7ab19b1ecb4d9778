"""HDF5 layouts, validation with clear errors, and atomic writing.

Layouts (docs/data.md has the full description):

* ``fastmri``: fastMRI multi-coil, exactly as fastMRI ships it: ``kspace`` (slices, C, H, W)
  complex64, ``reconstruction_rss``, ``ismrmrd_header`` (XML), root attrs ``max``, ``norm``,
  ``acquisition``; test files add a 1D ``mask`` (W,) and attr ``acceleration``. Maps come from
  an optional in-file ``maps`` (slices, C, M, H, W) or a sidecar ``<stem>.maps.h5``.
* ``vol3d``: root attr ``gleam_format = "vol3d"``; ``kspace`` (C, D, H, W) with D the fully
  sampled readout and (H, W) the phase encodes (ky, kz); ``maps`` (C, M, D, H, W); ``target``
  (M, D, H, W); optional ``kspace_hybrid`` (D, C, H, W) (inverse FFT along the readout, for
  fast ky-kz slice reads) and ``mask`` (H, W) for undersampled acquisitions.
* ``cine``: root attr ``gleam_format = "cine"``; ``kspace`` (T, C, H, W), ``maps`` (C, M, H, W)
  (or (C, M, T, H, W)), ``target`` (T, H, W) for M = 1 or (M, T, H, W); optional ``mask``
  (T, W) or (T, H, W) for undersampled acquisitions.
* ``cmrxrecon``: CMRxRecon challenge files (MATLAB v7.3 ``.mat``, which is HDF5), detected by a
  k-space variable (:data:`CMRX_KSPACE_KEYS`) stored as MATLAB stores complex arrays: a
  compound of ``real``/``imag``; see :mod:`gleam_core.data.cmrxrecon`.
* ``maps`` sidecar: root attr ``gleam_format = "maps"``, ``maps`` (slices, C, M, H, W),
  attrs naming the source file and the ESPIRiT parameters.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np

FORMAT_ATTR = "gleam_format"
FORMAT_VERSION = 1
FASTMRI, VOL3D, CINE, MAPS, CMRXRECON = "fastmri", "vol3d", "cine", "maps", "cmrxrecon"
# CMRxRecon's k-space variables: fully sampled ("kspace_full" 2023-24, "kspace" 2025),
# undersampled ("kspace_subNN" 2023, "kus" 2024), single-coil 2023 ("kspace_single_*").
CMRX_KSPACE_KEYS = ("kspace_full", "kspace", "kus", "kspace_sub04", "kspace_sub08", "kspace_sub10",
                    "kspace_single_full", "kspace_single_sub04", "kspace_single_sub08", "kspace_single_sub10")
SIDECAR_SUFFIX = ".maps.h5"


class DataFormatError(ValueError):
    """A file that cannot be used: names the file, the key and what was expected."""


@contextlib.contextmanager
def open_h5(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Opens an HDF5 file read-only; a missing, truncated or non-HDF5 file raises DataFormatError."""
    p = Path(path)
    if not p.is_file():
        raise DataFormatError(f"{p}: no such file")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise DataFormatError(f"{p}: not a readable HDF5 file ({exc})") from exc
    try:
        yield f
    finally:
        f.close()


def is_matlab_complex(d: object) -> bool:
    """A dataset holding a MATLAB complex array (compound of ``real`` and ``imag``)."""
    return isinstance(d, h5py.Dataset) and d.dtype.names is not None and {"real", "imag"} <= set(d.dtype.names)


def file_format(f: h5py.File) -> str:
    """The layout of an open file: ``gleam_format`` for ours, CMRxRecon for a MATLAB complex
    k-space variable, else fastMRI when it has a 4D kspace."""
    fmt = f.attrs.get(FORMAT_ATTR)
    if fmt is not None:
        return fmt.decode() if isinstance(fmt, bytes) else str(fmt)
    if any(key in f and is_matlab_complex(f[key]) for key in CMRX_KSPACE_KEYS):
        return CMRXRECON
    if "kspace" in f and isinstance(f["kspace"], h5py.Dataset) and f["kspace"].ndim == 4:
        return FASTMRI
    raise DataFormatError(f"{f.filename}: unknown layout (no '{FORMAT_ATTR}' attribute, no 4D 'kspace' dataset and no "
                          f"CMRxRecon k-space variable stored as MATLAB complex; keys: {sorted(f.keys())})")


def require_format(f: h5py.File, expected: str) -> None:
    """Raises DataFormatError unless the open file has the ``expected`` layout."""
    got = file_format(f)
    if got != expected:
        hint = f" (attr {FORMAT_ATTR})" if expected != FASTMRI else " (a 4D 'kspace' dataset)"
        raise DataFormatError(f"{f.filename}: layout {got!r}, expected {expected!r}{hint}")


def dataset(f: h5py.File, key: str, ndims: Sequence[int], *, complex_: bool | None = True) -> h5py.Dataset:
    """The dataset ``key`` after checking it exists, has one of ``ndims`` dims and the dtype kind."""
    if key not in f:
        raise DataFormatError(f"{f.filename}: missing dataset '{key}' (keys: {sorted(f.keys())})")
    d = f[key]
    if not isinstance(d, h5py.Dataset):
        raise DataFormatError(f"{f.filename}: '{key}' is a group, expected a dataset")
    if d.ndim not in ndims:
        raise DataFormatError(f"{f.filename}: '{key}' has shape {d.shape}, expected {' or '.join(map(str, ndims))} "
                              "dims")
    if complex_ is True and d.dtype.kind != "c":
        raise DataFormatError(f"{f.filename}: '{key}' has dtype {d.dtype}, expected complex64 (or complex128)")
    if complex_ is False and d.dtype.kind not in "fiub":
        raise DataFormatError(f"{f.filename}: '{key}' has dtype {d.dtype}, expected a real dtype")
    return d


def probe_end(d: h5py.Dataset) -> None:
    """Reads the last element, so a file truncated inside its data fails at scan time."""
    if d.size == 0:
        raise DataFormatError(f"{d.file.filename}: '{d.name.lstrip('/')}' is empty (shape {d.shape})")
    try:
        d[(-1,) * d.ndim]
    except OSError as exc:
        raise DataFormatError(f"{d.file.filename}: '{d.name.lstrip('/')}' cannot be read to its end; the file is "
                              f"truncated or corrupt ({exc})") from exc


def expect_shape(f: h5py.File, key: str, got: Sequence[int], expected: Sequence[int | None], layout: str) -> None:
    """Checks a shape against ``expected`` (None = any size), naming file, key and layout."""
    if len(got) != len(expected) or any(e is not None and g != e for g, e in zip(got, expected)):
        exp = tuple("*" if e is None else e for e in expected)
        raise DataFormatError(f"{f.filename}: '{key}' has shape {tuple(got)}, expected {exp} ({layout})")


def str_attr(f: h5py.File, name: str, default: str = "") -> str:
    v = f.attrs.get(name, default)
    return v.decode() if isinstance(v, bytes) else str(v)


def sidecar_path(path: str | os.PathLike, maps_dir: str | os.PathLike | None = None) -> Path:
    """Where the maps of ``path`` live: ``<maps_dir or its folder>/<stem>.maps.h5``."""
    p = Path(path)
    return Path(maps_dir or p.parent) / (p.stem + SIDECAR_SUFFIX)


def write_complex(f: h5py.File, key: str, data: np.ndarray, chunks: tuple[int, ...] | None = None) -> None:
    """Stores complex data as complex64 (fastMRI's dtype)."""
    f.create_dataset(key, data=np.ascontiguousarray(data, dtype=np.complex64), chunks=chunks)
