"""CMRxRecon challenge data (cardiac cine and T1/T2 mapping), read as the challenge ships it.

What the organisers document (CmrxRecon/CMRxRecon ``ChallengeDataFormat/Format_cine.txt`` and
``Format_mapping.txt`` for 2023; CmrxRecon/CMRxRecon2024 ``ChallengeDataFormat/Format_Task1.txt``
and ``Format_Task2.txt`` for 2024; their ``loadFun.py`` and the 2025 tutorial, which read the
files with h5py):

* Files are MATLAB v7.3 ``.mat``, which is HDF5 with a 512-byte MATLAB header. A variable of
  MATLAB size ``(kx, ky, kc, kz, t)`` (readout, phase encode, coil, slice, time frame; mapping
  files have weighted images ``w`` in place of ``t``) is an HDF5 dataset of shape
  ``(t, kz, kc, ky, kx)`` (MATLAB is column-major, so h5py sees the axes reversed), with attr
  ``MATLAB_class`` and complex values as a compound of ``real`` and ``imag``.
* Layout: ``MultiCoil/{Cine,Mapping}/{TrainingSet,ValidationSet}/{FullSample,AccFactor04,
  AccFactor08,AccFactor10}/P001/{cine_lax,cine_sax,T1map,T2map}.mat`` (2023);
  ``.../TrainingSet/FullSample/P001/cine_sax.mat`` with masks in
  ``.../Mask_Task1/P001/cine_sax_mask_Uniform4.mat`` and undersampled validation data in
  ``.../UnderSample_Task1/P001/cine_sax_kus_Uniform4.mat`` (2024; 2025 adds center and vendor
  folders and ``Mask_TaskAll``).
* K-space variables: ``kspace_full`` (2023, 2024), ``kspace`` (2025), ``kspace_sub04/08/10``
  (2023 undersampled), ``kus`` (2024 undersampled). Mask variables: ``mask04``/``mask08``/
  ``mask10`` in ``<name>_mask.mat`` (2023) and ``mask`` in ``<name>_mask_<Pattern><R>.mat``
  (2024); MATLAB size ``(kx, ky)`` (h5py ``(ky, kx)``), or ``(kx, ky, t)`` for 2024's k-t masks
  (h5py ``(t, ky, kx)``). Undersampling is along ky; the central 24 (2023) or 16 (2024) ky
  lines are always sampled (autocalibration).

Items (kind "cine", one per slice ``kz``; LAX files hold their views 2CH/3CH/4CH as slices):
kspace (C, T, H, W) with H = kx (readout) and W = ky (phase encode), read lazily one slice at
a time; maps (C, M, 1, H, W) from a sidecar ``<stem>.maps.h5`` (ESPIRiT of the time-averaged
k-space: ``gleam-data maps``); mask (1, 1, 1, W) for the challenge's 1D masks, (1, T, 1, W) or
(1, T, H, W) for k-t masks. Fully sampled files are undersampled with the run's masks (the
challenge's own pattern: ``{type: uniform, accelerations: [4, 8, 10], calib: 24}``);
undersampled files use their mask file (found next to the file, or in the ``Mask_*`` folder
that mirrors their ``UnderSample_*`` folder), else the lines sampled in the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ..atomic import atomic_path
from .base import FileEntry, H5Dataset
from .formats import (CMRX_KSPACE_KEYS, CMRXRECON, MAPS, DataFormatError, dataset, expect_shape, file_format,
                      is_matlab_complex, open_h5, probe_end, require_format)
from .masks import MaskFunc
from .splits import Source

FULL_KEYS = ("kspace_full", "kspace")
_SUB = re.compile(r"kspace_sub(\d+)$")
MATLAB_ORDER = "(kx, ky, coil, slice, time)"


def kspace_key(f: h5py.File) -> tuple[str, bool]:
    """The k-space variable of an open CMRxRecon file and whether it is undersampled; the error
    names the file, the keys found and the layout expected."""
    found = [k for k in CMRX_KSPACE_KEYS if k in f]
    if not found:
        raise DataFormatError(f"{f.filename}: no CMRxRecon k-space variable (expected one of {list(CMRX_KSPACE_KEYS)}; "
                              f"keys: {sorted(f.keys())})")
    key = found[0]
    if key.startswith("kspace_single"):
        raise DataFormatError(f"{f.filename}: '{key}' is single-coil data; only the multi-coil files "
                              f"(MultiCoil/...) can be read, with '{FULL_KEYS[0]}', 'kspace_subNN' or 'kus'")
    d = f[key]
    if not is_matlab_complex(d):
        raise DataFormatError(f"{f.filename}: '{key}' has dtype {getattr(d, 'dtype', type(d).__name__)}, expected "
                              "MATLAB's complex storage (a compound of 'real' and 'imag')")
    if d.ndim != 5:
        raise DataFormatError(f"{f.filename}: '{key}' has shape {d.shape}, expected 5 dims: MATLAB {MATLAB_ORDER} "
                              "stored reversed, (time, slice, coil, ky, kx)")
    return key, key not in FULL_KEYS


def to_complex(a: np.ndarray) -> np.ndarray:
    """A MATLAB complex array read by h5py (fields ``real``, ``imag``) as complex64."""
    out = np.empty(a.shape, dtype=np.complex64)
    out.real, out.imag = a["real"], a["imag"]
    return out


def read_mask_file(path: str | Path, key: str | None = None) -> torch.Tensor:
    """A CMRxRecon mask file as a compact float32 mask in item axes: (1, 1, 1, W) for 2D masks
    (MATLAB (kx, ky), constant along kx), (1, T, 1, W) or (1, T, H, W) for k-t masks (MATLAB
    (kx, ky, t)). ``key``: the variable (default: ``mask``, else the only ``maskNN``)."""
    with open_h5(path) as f:
        if key is None:
            keys = [k for k in f.keys() if k == "mask" or re.fullmatch(r"mask\d+", k)]
            if len(keys) != 1:
                raise DataFormatError(f"{path}: expected one mask variable ('mask' or 'maskNN'), found {keys} (keys: "
                                      f"{sorted(f.keys())}); name it")
            key = keys[0]
        d = dataset(f, key, (2, 3), complex_=False)
        m = np.asarray(d[()]) != 0
    m = m.reshape((1,) + m.shape) if m.ndim == 2 else m                  # (T, ky, kx)
    m = torch.from_numpy(m.transpose(0, 2, 1).astype(np.float32))        # (T, H=kx, W=ky)
    if bool((m == m[:, :1]).all()):                                     # the same lines at every kx
        m = m[:, :1]
    if m.shape[0] > 1 and bool((m == m[:1]).all()):                     # the same in every frame
        m = m[:1]
    return m.unsqueeze(0)


def mask_file_for(path: Path, key: str) -> tuple[Path, str] | None:
    """Where the challenge keeps the mask of undersampled file ``path`` (variable ``key``):
    2023 ``<stem>_mask.mat`` next to it (``maskNN``); 2024 ``<stem with _kus_ -> _mask_>.mat``
    next to it or in a ``Mask_*`` folder mirroring the ``UnderSample_*`` folder above it."""
    if (m := _SUB.match(key)) is not None:
        side = path.with_name(f"{path.stem}_mask.mat")
        return (side, f"mask{m.group(1)}") if side.is_file() else None
    name = path.name.replace("_kus_", "_mask_")
    if name == path.name:
        return None
    candidates = [path.with_name(name)]
    for depth, folder in enumerate(path.parents):
        if folder.name.startswith("UnderSample"):
            rel = path.parent.relative_to(folder)
            candidates += [q / rel / name for q in sorted(folder.parent.glob("Mask_*"))]
            break
        if depth > 6:
            break
    for c in candidates:
        if c.is_file():
            return c, "mask"
    return None


def sampled_lines(f: h5py.File, key: str) -> torch.Tensor:
    """The mask of an undersampled file from its data: the ky lines (per frame) holding any
    non-zero sample, as (1, T, 1, W) (reads the first coil of the first slice)."""
    a = to_complex(np.asarray(f[key][:, 0, 0]))                         # (T, ky, kx)
    lines = torch.from_numpy((np.abs(a) > 0).any(axis=2).astype(np.float32))  # (T, W)
    if bool((lines == lines[:1]).all()):
        lines = lines[:1]
    return lines.reshape(1, lines.shape[0], 1, lines.shape[1])


def maps_path(path: Path, maps_dir: str | Path | None = None) -> Path:
    """The ESPIRiT sidecar of a CMRxRecon file: ``<stem>.maps.h5`` next to it, or
    ``<patient>_<stem>.maps.h5`` in ``maps_dir`` (the challenge repeats file names per patient)."""
    if maps_dir is None:
        return path.with_name(path.stem + ".maps.h5")
    return Path(maps_dir) / f"{path.parent.name}_{path.stem}.maps.h5"


class CmrxReconDataset(H5Dataset):
    """CMRxRecon multi-coil cine / mapping files; every slice is a cine item (kind "cine").

    Args:
        source: directory (``.mat`` files found recursively; mask files left out), file list
            or files.
        mask: mask spec or function for fully sampled files (the challenge's pattern:
            ``{"type": "uniform", "accelerations": [4, 8, 10], "calib": 24}``); undersampled
            files use their own mask.
        fixed_masks, seed, on_error, verbose: see :class:`~gleam_core.data.base.H5Dataset`.
        maps_dir: folder of the maps sidecars (default: next to each file; see :func:`maps_path`).
    """

    item_name = "cines"

    def __init__(self, source: Source, *, mask: Mapping[str, Any] | MaskFunc | None = None, fixed_masks: bool = False,
                 seed: int = 0, maps_dir: str | Path | None = None, on_error: str = "auto",
                 verbose: bool = True) -> None:
        self.maps_dir = Path(maps_dir) if maps_dir is not None else None
        super().__init__(source, mask=mask, fixed_masks=fixed_masks, seed=seed, on_error=on_error, verbose=verbose)

    def _scan(self, path: Path) -> FileEntry:
        with open_h5(path) as f:
            require_format(f, CMRXRECON)
            key, undersampled = kspace_key(f)
            d = f[key]
            frames, slices, coils, ky, kx = d.shape
            probe_end(d)
            info: dict[str, Any] = {"key": key, "undersampled": undersampled, "acquisition": path.stem,
                                    "mask_source": None}
            if undersampled:
                found = mask_file_for(path, key)
                if found is not None:
                    info["mask"] = read_mask_file(*found)
                    info["mask_source"] = str(found[0])
                else:
                    info["mask"] = sampled_lines(f, key)
                    info["mask_source"] = "the sampled lines of the file (no mask file found)"
                m = info["mask"]
                if m.shape[-1] != ky or m.shape[1] not in (1, frames) or m.shape[2] not in (1, kx):
                    raise DataFormatError(f"{info['mask_source']}: mask of shape {tuple(m.shape)} (item axes 1, T, H, "
                                          f"W) does not fit '{key}' of {path} with T={frames}, H=kx={kx}, W=ky={ky}")
        side = maps_path(path, self.maps_dir)
        if not side.is_file():
            raise DataFormatError(f"{path}: no sensitivity maps at {side}; compute them with `gleam-data maps --in "
                                  f"{path.parent}" + (f" --out {self.maps_dir}" if self.maps_dir else "") + "`")
        with open_h5(side) as s:
            if file_format(s) != MAPS:
                raise DataFormatError(f"{side}: not a maps sidecar (gleam_format is {file_format(s)!r})")
            m = dataset(s, "maps", (5,))
            expect_shape(s, "maps", m.shape, (slices, coils, None, kx, ky),
                         f"maps (slices, C, M, kx, ky) for {path.name}")
            probe_end(m)
            sets = m.shape[2]
        info["maps_file"] = side
        return FileEntry(path, slices, (coils, frames, kx, ky), sets, info)

    def _load(self, entry: FileEntry, j: int, index: int) -> dict[str, Any]:
        from .transforms import make_item

        info = entry.info
        coils, frames, h, w = entry.kspace_shape
        with open_h5(entry.path) as f:
            k = to_complex(np.asarray(f[info["key"]][:, j]))            # (T, C, ky, kx): one slice read
        kspace = torch.from_numpy(k).permute(1, 0, 3, 2)                # (C, T, H=kx, W=ky)
        with open_h5(info["maps_file"]) as s:
            maps = torch.from_numpy(np.asarray(s["maps"][j])).unsqueeze(2)  # (C, M, 1, H, W)
        mask = info["mask"] if info["undersampled"] else self.mask_for((frames, h, w), index, entry.path.name)
        meta = {"file": str(entry.path), "slice": j, "acquisition": info["acquisition"]}
        return make_item(kspace, maps, mask, kind="cine", meta=meta, undersampled=info["undersampled"])


# ---------------------------------------------------------------------------------------------
# ESPIRiT sidecars (gleam-data maps)

def compute_maps_sidecar(path: Path, side: Path, *, espirit: dict[str, Any], device: str = "cpu", batch: int = 4,
                         on_slices: Callable[[int], None] | None = None) -> None:
    """ESPIRiT maps (slices, C, M, kx, ky) of one CMRxRecon file from its time-averaged k-space,
    one batch of slices at a time; the calibration width is capped at the autocalibration
    lines of undersampled files."""
    from .sidecar import cap_calib_width, center_width, write_sidecar

    with open_h5(path) as f:
        require_format(f, CMRXRECON)
        key, undersampled = kspace_key(f)
        d = f[key]
        frames, slices, coils, ky, kx = d.shape
        params = dict(espirit)
        if undersampled:
            found = mask_file_for(path, key)
            mask = read_mask_file(*found) if found is not None else sampled_lines(f, key)
            every = mask.bool().all(dim=1)[0]                             # (H', W): sampled in all frames
            acs = min(center_width(every[every.shape[0] // 2].numpy()),
                      center_width(every[:, every.shape[1] // 2].numpy()) if every.shape[0] > 1 else kx)
            cap_calib_width(params, acs, path, f"'{key}' has")

        def read(start: int, stop: int) -> np.ndarray:               # (n, C, kx, ky), averaged over time
            return to_complex(np.asarray(d[:, start:stop])).mean(axis=0).transpose(0, 1, 3, 2)

        write_sidecar(path, side, read, source_shape=d.shape, maps_shape=(slices, coils, kx, ky), espirit=espirit,
                      params=params, device=device, batch=batch, on_slices=on_slices)


# ---------------------------------------------------------------------------------------------
# writing (tests, examples): exactly as MATLAB's save -v7.3 stores the variables

_USERBLOCK = 512
# MATLAB's text header at the start of the user block: 116 bytes of text, 8 of subsystem
# offset, version 0x0200 and the endian indicator "IM".
_MATLAB_HEADER = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 1970 HDF5 schema 1.00 ."
                  .ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")


def write_matlab_variables(path: str | Path, variables: Mapping[str, np.ndarray]) -> None:
    """Writes arrays given in MATLAB's axis order as a MATLAB v7.3 file (atomically), as
    ``save -v7.3`` does: each stored with its axes reversed, complex arrays as a compound of
    ``real``/``imag``, the ``MATLAB_class`` attribute, MATLAB's header in a 512-byte user block."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", userblock_size=_USERBLOCK) as f:
            for name, value in variables.items():
                a = np.asarray(value)
                stored = np.ascontiguousarray(a.transpose(tuple(reversed(range(a.ndim)))))
                if np.iscomplexobj(stored):
                    real = np.float32 if stored.dtype == np.complex64 else np.float64
                    compound = np.empty(stored.shape, dtype=[("real", real), ("imag", real)])
                    compound["real"], compound["imag"] = stored.real, stored.imag
                    ds = f.create_dataset(name, data=compound, chunks=True, compression="gzip")
                    cls = "single" if real is np.float32 else "double"
                else:
                    ds = f.create_dataset(name, data=stored)
                    cls = {np.dtype(np.float32): "single", np.dtype(np.uint8): "uint8",
                           np.dtype(bool): "logical"}.get(stored.dtype, "double")
                ds.attrs["MATLAB_class"] = np.bytes_(cls)
        with open(tmp, "r+b") as raw:
            raw.write(_MATLAB_HEADER)


def write_cmrxrecon(path: str | Path, kspace: np.ndarray, key: str = "kspace_full") -> None:
    """Writes a CMRxRecon k-space file: ``kspace`` complex in MATLAB's order (kx, ky, coil,
    slice, time), under variable ``key`` (``kspace_full``, ``kspace``, ``kus``, ``kspace_subNN``)."""
    k = np.asarray(kspace)
    if k.ndim != 5 or not np.iscomplexobj(k):
        raise ValueError(f"kspace must be complex with MATLAB axes {MATLAB_ORDER}, got shape {k.shape} dtype {k.dtype}")
    write_matlab_variables(path, {key: k.astype(np.complex64)})


def write_cmrxrecon_mask(path: str | Path, masks: Mapping[str, np.ndarray]) -> None:
    """Writes a CMRxRecon mask file: each mask (MATLAB (kx, ky) or (kx, ky, t), 0/1) under its
    variable name (``mask04``... in 2023, ``mask`` from 2024), as MATLAB doubles."""
    write_matlab_variables(path, {k: np.asarray(v, dtype=np.float64) for k, v in masks.items()})
