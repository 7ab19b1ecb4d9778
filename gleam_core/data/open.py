"""One entry point from a source description to a dataset."""

from __future__ import annotations

from typing import Any

from .base import MaskedDataset
from .cine import CineDataset
from .cmrxrecon import CmrxReconDataset
from .fastmri import FastMRIDataset
from .formats import CINE, CMRXRECON, FASTMRI, VOL3D, DataFormatError, file_format, open_h5
from .splits import Source, resolve_files
from .synthetic import SyntheticDataset
from .volume import Volume3DDataset

_CLASSES = {FASTMRI: FastMRIDataset, VOL3D: Volume3DDataset, CINE: CineDataset, CMRXRECON: CmrxReconDataset}
SYNTHETIC_PREFIX = "synthetic:"


def detect_format(source: Source) -> str:
    """The layout of the first readable data file of ``source``."""
    files, _, _ = resolve_files(source)
    errors = []
    for path in files:
        try:
            with open_h5(path) as f:
                return file_format(f)
        except DataFormatError as exc:
            errors.append(str(exc))
    raise ValueError(f"cannot detect the data format of {source!s}: no readable file ({'; '.join(errors)})")


def open_dataset(source: Source, *, format: str = "auto", **kwargs: Any) -> MaskedDataset:
    """A dataset for ``source``.

    ``"synthetic:<kind>"`` (kind knee2d | brain2d | knee3d | cine) gives a
    :class:`SyntheticDataset` (pass ``n``, ``seed`` and its other arguments as keywords);
    otherwise ``source`` is a directory, file list or files, and ``format`` ("auto", "fastmri",
    "vol3d", "cine", "cmrxrecon") picks :class:`FastMRIDataset`, :class:`Volume3DDataset`,
    :class:`CineDataset` or :class:`CmrxReconDataset` (auto: the layout of the first readable
    file; a spec selects one with ``options: {format: cmrxrecon}`` in its data source).
    Keyword arguments go to the dataset (``mask``, ``fixed_masks``, ``seed``, ``mode``,
    ``maps_dir``...).
    """
    if isinstance(source, str) and source.startswith(SYNTHETIC_PREFIX):
        return SyntheticDataset(source[len(SYNTHETIC_PREFIX):], **kwargs)
    fmt = detect_format(source) if format == "auto" else format
    if fmt not in _CLASSES:
        raise ValueError(f"format must be 'auto' or one of {sorted(_CLASSES)}, got {fmt!r}")
    return _CLASSES[fmt](source, **kwargs)
