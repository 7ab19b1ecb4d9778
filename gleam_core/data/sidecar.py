"""Sensitivity-map sidecars for fastMRI and CMRxRecon files (``gleam-data maps``).

For each fastMRI file ``<stem>.h5`` a sidecar ``<stem>.maps.h5`` (in ``out_dir``, default
next to the input) holds ``maps`` (slices, C, M, H, W) complex64 computed by ESPIRiT, with
attrs ``gleam_format = "maps"``, ``source`` (the input's name), ``source_shape`` and the
ESPIRiT parameters. Inputs are only ever opened read-only; a sidecar is written to a
temporary file and renamed into place when complete, so an interrupted run leaves no partial
sidecar and a rerun resumes with the files not done yet.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ..atomic import atomic_h5
from .espirit import espirit_maps
from .formats import (CMRXRECON, FASTMRI, FORMAT_ATTR, MAPS, DataFormatError, dataset, file_format, open_h5,
                      require_format, sidecar_path, str_attr)
from .splits import Source, resolve_files


@dataclass
class MapsReport:
    """What a maps run did: files computed, kept (already done), and failed (with reasons)."""

    computed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def center_width(mask: np.ndarray) -> int:
    """Contiguous sampled columns around the center of a 1D mask (the usable calibration width)."""
    w = mask.shape[0]
    c = w // 2
    if not mask[c]:
        return 0
    lo, hi = c, c
    while lo > 0 and mask[lo - 1]:
        lo -= 1
    while hi < w - 1 and mask[hi + 1]:
        hi += 1
    return hi - lo + 1


def _request_key(espirit: dict[str, Any]) -> str:
    """The ESPIRiT parameters a sidecar was asked for, as stored (so a rerun with other
    parameters recomputes it)."""
    return json.dumps({k: espirit[k] for k in sorted(espirit)}, default=str)


def _shapes(f: h5py.File) -> tuple[tuple[int, ...], tuple[int, int, int, int]]:
    """The k-space shape of an open fastMRI or CMRxRecon file as stored, and the (slices, C,
    H, W) its maps (slices, C, M, H, W) must have (CMRxRecon: (time, slice, coil, ky, kx)
    stored, maps over (kx, ky))."""
    if file_format(f) == CMRXRECON:
        from .cmrxrecon import kspace_key

        key, _ = kspace_key(f)
        shape = tuple(f[key].shape)
        _, slices, coils, ky, kx = shape
        return shape, (slices, coils, kx, ky)
    require_format(f, FASTMRI)
    shape = tuple(dataset(f, "kspace", (4,)).shape)
    return shape, shape  # type: ignore[return-value]


def sidecar_is_current(path: Path, side: Path, espirit: dict[str, Any] | None = None) -> bool:
    """True when ``side`` is a complete maps sidecar matching the shape of fastMRI or CMRxRecon
    file ``path`` (and, when ``espirit`` is given, computed with those parameters)."""
    try:
        with open_h5(path) as f, open_h5(side) as s:
            shape, (slices, coils, h, w) = _shapes(f)
            if espirit is not None and str_attr(s, "espirit_request") != _request_key(espirit):
                return False
            return (file_format(s) == MAPS and str_attr(s, "source") == path.name
                    and tuple(s.attrs.get("source_shape", ())) == shape and "maps" in s
                    and tuple(s["maps"].shape[:2]) == (slices, coils) and tuple(s["maps"].shape[3:]) == (h, w))
    except (DataFormatError, KeyError):
        return False


def cap_calib_width(params: dict[str, Any], width: int, path: Path, what: str) -> None:
    """Limits ESPIRiT's calibration region of undersampled data to its ``width`` fully sampled
    center lines (``what`` says which, for the error when fewer than the kernel width remain)."""
    params["calib_width"] = min(params.get("calib_width", 24), width)
    if params["calib_width"] < params.get("kernel_width", 6):
        raise DataFormatError(f"{path}: {what} only {width} contiguous center lines, fewer than the ESPIRiT kernel "
                              f"width {params.get('kernel_width', 6)}")


def write_sidecar(path: Path, side: Path, read: Callable[[int, int], np.ndarray], *, source_shape: Sequence[int],
                  maps_shape: tuple[int, int, int, int], espirit: dict[str, Any], params: dict[str, Any],
                  device: str = "cpu", batch: int = 4, on_slices: Callable[[int], None] | None = None) -> None:
    """Writes the maps sidecar ``side`` of ``path`` atomically: ``maps`` (slices, C, M, H, W)
    complex64 from ``read(start, stop)``, the k-space (n, C, H, W) of slices [start, stop),
    ``batch`` slices at a time; ``espirit``: the parameters asked for (stored to tell a rerun
    with others), ``params``: those used."""
    slices, coils, h, w = maps_shape
    sets = params.get("sets", 1)
    with atomic_h5(side) as s:
        s.attrs[FORMAT_ATTR] = MAPS
        s.attrs["source"] = path.name
        s.attrs["source_shape"] = np.asarray(source_shape, dtype=np.int64)
        for key, value in params.items():
            s.attrs[f"espirit_{key}"] = value
        s.attrs["espirit_request"] = _request_key(espirit)
        out = s.create_dataset("maps", shape=(slices, coils, sets, h, w), dtype=np.complex64,
                               chunks=(1, coils, sets, h, w))
        for start in range(0, slices, batch):
            stop = min(start + batch, slices)
            ks = torch.from_numpy(np.ascontiguousarray(read(start, stop))).to(device=device, dtype=torch.complex64)
            out[start:stop] = espirit_maps(ks, **params).cpu().numpy()
            if on_slices is not None:
                on_slices(stop - start)


def compute_sidecar(path: Path, side: Path, *, espirit: dict[str, Any], device: str = "cpu", batch: int = 4,
                    on_slices: Callable[[int], None] | None = None) -> None:
    """Computes the maps of one fastMRI file slice batch by slice batch and writes ``side``."""
    with open_h5(path) as f:
        require_format(f, FASTMRI)
        k = dataset(f, "kspace", (4,))
        params = dict(espirit)
        if "mask" in f:  # undersampled test file: calibrate on its fully sampled center only
            cap_calib_width(params, center_width(np.asarray(f["mask"][()]) > 0), path, "the mask samples")
        write_sidecar(path, side, lambda start, stop: k[start:stop], source_shape=k.shape, maps_shape=k.shape,
                      espirit=espirit, params=params, device=device, batch=batch, on_slices=on_slices)


def compute_maps(source: Source, out_dir: str | Path | None = None, *, overwrite: bool = False, device: str = "cpu",
                 batch: int = 4, progress: bool = True, **espirit: Any) -> MapsReport:
    """Computes missing sidecars for every fastMRI or CMRxRecon file of ``source`` (CMRxRecon:
    :func:`~gleam_core.data.cmrxrecon.compute_maps_sidecar`); see the module docstring.

    ``espirit`` keywords go to :func:`~gleam_core.data.espirit.espirit_maps` (calib_width,
    kernel_width, thresh, crop, sets). Files that fail are reported, not fatal.
    """
    from tqdm import tqdm

    from . import cmrxrecon

    files, skipped, _ = resolve_files(source)
    report = MapsReport(failed=list(skipped))
    todo, targets = [], {}
    for path in files:
        try:
            with open_h5(path) as f:
                fmt = file_format(f)
                side = cmrxrecon.maps_path(path, out_dir) if fmt == CMRXRECON else sidecar_path(path, out_dir)
                n = _shapes(f)[1][0]
        except DataFormatError as exc:
            report.failed.append((path, str(exc)))
            continue
        if side in targets:  # two inputs, one sidecar name: computing both would lose one
            report.failed.append((path, f"{path}: its maps would go to {side}, as those of {targets[side]}; write "
                                        "them next to the inputs (no --out) or in separate folders"))
            continue
        targets[side] = path
        if not overwrite and side.is_file() and sidecar_is_current(path, side, espirit):
            report.kept.append(path)
        else:
            todo.append((path, side, n, fmt))
    with tqdm(total=sum(n for _, _, n, _ in todo), desc="ESPIRiT maps", unit="slice", disable=not progress) as bar:
        for path, side, n, fmt in todo:
            bar.set_postfix_str(path.name)
            compute = cmrxrecon.compute_maps_sidecar if fmt == CMRXRECON else compute_sidecar
            try:
                compute(path, side, espirit=espirit, device=device, batch=batch, on_slices=bar.update)
                report.computed.append(path)
            except (DataFormatError, ValueError, RuntimeError) as exc:
                report.failed.append((path, str(exc)))
    return report
