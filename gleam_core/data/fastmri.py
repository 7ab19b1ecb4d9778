"""fastMRI multi-coil HDF5: reader (slices are items), header parsing, writer.

Layout (exactly as fastMRI ships it): ``kspace`` (slices, C, H, W) complex64, centered, H the
readout and W the phase encode; ``reconstruction_rss`` (slices, h, w) float32; ``ismrmrd_header``
(XML: encoded and recon matrix sizes, the sampled range along W); root attrs ``max``, ``norm``,
``acquisition``; test files (undersampled on the scanner) add a 1D ``mask`` (W,). Maps: an
in-file ``maps`` (slices, C, M, H, W) or a sidecar ``<stem>.maps.h5`` written by
``gleam-data maps``.

Items follow :mod:`gleam_core.data.transforms` with kind "2d", S = (H, W), mask (1, 1, W);
columns outside the sampled range of the header are never marked sampled (fastMRI's
padding). ``meta`` adds ``acquisition``, ``max``, ``norm``, ``recon_size`` (h, w) for
evaluation crops, and ``padding`` (first, end) of the sampled columns.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ..atomic import atomic_h5
from ..ops import ifft2c, rss
from .base import FileEntry, H5Dataset
from .formats import (FASTMRI, MAPS, DataFormatError, dataset, expect_shape, file_format, open_h5,
                      probe_end, require_format, sidecar_path, str_attr, write_complex)
from .masks import MaskFunc
from .splits import Source
from .transforms import make_item

_NS = "{http://www.ismrm.org/ISMRMRD}"


def parse_header(xml: str | bytes, where: str = "ismrmrd_header") -> dict[str, Any]:
    """Encoded size (x, y, z), recon size (x, y, z), the sampled range [first, end) along W, and
    the fields of view in mm (x, y, z) of both spaces (``encoded_fov_mm``, ``recon_fov_mm``;
    None where the header has none)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DataFormatError(f"{where}: malformed XML ({exc})") from exc

    def query(*path: str) -> int:
        node = root.find("/".join(_NS + p for p in path))
        if node is None or node.text is None:
            raise DataFormatError(f"{where}: missing element {'/'.join(path)}")
        return int(float(node.text))

    enc = tuple(query("encoding", "encodedSpace", "matrixSize", a) for a in "xyz")
    recon = tuple(query("encoding", "reconSpace", "matrixSize", a) for a in "xyz")
    center = query("encoding", "encodingLimits", "kspace_encoding_step_1", "center")
    maximum = query("encoding", "encodingLimits", "kspace_encoding_step_1", "maximum")
    first = enc[1] // 2 - center

    def fov(space: str) -> tuple[float, float, float] | None:
        nodes = [root.find("/".join(_NS + p for p in ("encoding", space, "fieldOfView_mm", a))) for a in "xyz"]
        try:
            values = tuple(float(n.text) for n in nodes)  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):
            return None
        return values if all(v > 0 for v in values) else None

    return {"encoded_size": enc, "recon_size": recon, "padding": (first, first + maximum + 1),
            "encoded_fov_mm": fov("encodedSpace"), "recon_fov_mm": fov("reconSpace")}


def header_xml(encoded: tuple[int, int, int], recon: tuple[int, int, int], center: int, maximum: int,
               fov_mm: tuple[float, float, float] = (280.0, 280.0, 4.5)) -> str:
    """A minimal ISMRMRD header with the fields fastMRI reads (sizes and the W encoding limits)."""
    def size(tag: str, s: tuple[int, ...]) -> str:
        return (f"<{tag}><matrixSize><x>{s[0]}</x><y>{s[1]}</y><z>{s[2]}</z></matrixSize>"
                f"<fieldOfView_mm><x>{fov_mm[0]}</x><y>{fov_mm[1]}</y><z>{fov_mm[2]}</z></fieldOfView_mm></{tag}>")
    return ('<?xml version="1.0" encoding="utf-8"?>\n<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
            f"<encoding>{size('encodedSpace', encoded)}{size('reconSpace', recon)}"
            "<encodingLimits><kspace_encoding_step_1>"
            f"<minimum>0</minimum><maximum>{maximum}</maximum><center>{center}</center>"
            "</kspace_encoding_step_1></encodingLimits><trajectory>cartesian</trajectory></encoding>"
            "</ismrmrdHeader>")


def _maps_source(f: h5py.File, path: Path, nslices: int, coils: int, hw: tuple[int, int], mode: str,
                 maps_dir: Path | None) -> tuple[str, Path, int]:
    """Where this file's maps are ("file" or "sidecar"), the file that holds them, and M."""
    layout = "maps (slices, C, M, H, W)"
    if mode in ("auto", "file") and "maps" in f:
        d = dataset(f, "maps", (5,))
        expect_shape(f, "maps", d.shape, (nslices, coils, None, *hw), layout)
        return "file", path, d.shape[2]
    side = sidecar_path(path, maps_dir)
    if mode in ("auto", "sidecar") and side.is_file():
        with open_h5(side) as s:
            if file_format(s) != MAPS:
                raise DataFormatError(f"{side}: not a maps sidecar (gleam_format is {file_format(s)!r})")
            d = dataset(s, "maps", (5,))
            expect_shape(s, "maps", d.shape, (nslices, coils, None, *hw), f"{layout} for {path.name}")
            probe_end(d)
            return "sidecar", side, d.shape[2]
    where = "in the file (key 'maps')" if mode == "file" else f"in the file (key 'maps') or at {side}"
    raise DataFormatError(f"{path}: no sensitivity maps {where}; compute them with "
                          f"`gleam-data maps --in {path.parent}" + (f" --out {maps_dir}" if maps_dir else "") + "`")


class FastMRIDataset(H5Dataset):
    """fastMRI multi-coil volumes; every slice is an item (kind "2d").

    Args:
        source: directory, file list or files (see :mod:`gleam_core.data.splits`).
        mask: mask spec or function (1D masks: ``{"type": "random", "center_fractions": [0.08],
            "accelerations": [4]}``); ignored for test files, which carry their own ``mask``.
        fixed_masks, seed, on_error, verbose: see :class:`~gleam_core.data.base.H5Dataset`.
        maps: "auto" (in-file ``maps``, else sidecar), "file" or "sidecar".
        maps_dir: folder of the sidecars (default: next to each file).
    """

    item_name = "slices"

    def __init__(self, source: Source, *, mask: Mapping[str, Any] | MaskFunc | None = None, fixed_masks: bool = False,
                 seed: int = 0, maps: str = "auto", maps_dir: str | Path | None = None, on_error: str = "auto",
                 verbose: bool = True) -> None:
        if maps not in ("auto", "file", "sidecar"):
            raise ValueError(f"maps must be 'auto', 'file' or 'sidecar', got {maps!r}")
        self.maps_mode = maps
        self.maps_dir = Path(maps_dir) if maps_dir is not None else None
        super().__init__(source, mask=mask, fixed_masks=fixed_masks, seed=seed, on_error=on_error, verbose=verbose)

    def _scan(self, path: Path) -> FileEntry:
        with open_h5(path) as f:
            require_format(f, FASTMRI)
            k = dataset(f, "kspace", (4,))
            nslices, coils, h, w = k.shape
            probe_end(k)
            info: dict[str, Any] = {"acquisition": str_attr(f, "acquisition"),
                                    "max": float(f.attrs.get("max", float("nan"))),
                                    "norm": float(f.attrs.get("norm", float("nan")))}
            if "ismrmrd_header" in f:
                raw = f["ismrmrd_header"][()]
                hdr = parse_header(raw, f"{path}: 'ismrmrd_header'")
                info["recon_size"] = hdr["recon_size"][:2]
                info["padding"] = hdr["padding"]
            else:
                info["recon_size"], info["padding"] = None, (0, w)
            if not 0 <= info["padding"][0] < info["padding"][1] <= w:
                raise DataFormatError(f"{path}: 'ismrmrd_header' encoding limits give sampled columns "
                                      f"{info['padding']}, outside the k-space width {w}")
            if "mask" in f:
                m = dataset(f, "mask", (1,), complex_=False)
                expect_shape(f, "mask", m.shape, (w,), "test-file mask (W,)")
                info["undersampled"] = True
            else:
                info["undersampled"] = False
            info["maps"], info["maps_file"], sets = _maps_source(f, path, nslices, coils, (h, w), self.maps_mode,
                                                                self.maps_dir)
        return FileEntry(path, nslices, (coils, h, w), sets, info)

    def _load(self, entry: FileEntry, j: int, index: int) -> dict[str, Any]:
        info = entry.info
        with open_h5(entry.path) as f:
            kspace = torch.from_numpy(np.asarray(f["kspace"][j]))
            file_mask = np.asarray(f["mask"][()], dtype=np.float32) if info["undersampled"] else None
            if info["maps"] == "file":
                maps = torch.from_numpy(np.asarray(f["maps"][j]))
        if info["maps"] == "sidecar":
            with open_h5(info["maps_file"]) as s:
                maps = torch.from_numpy(np.asarray(s["maps"][j]))
        h, w = entry.kspace_shape[1:]
        if file_mask is not None:
            mask = torch.from_numpy(file_mask).reshape(1, 1, w)
        else:
            mask = self.mask_for((h, w), index, entry.path.name).clone()
            first, end = info["padding"]
            mask[..., :first] = 0
            mask[..., end:] = 0
        meta = {"file": str(entry.path), "slice": j, "acquisition": info["acquisition"], "max": info["max"],
                "norm": info["norm"], "recon_size": info["recon_size"], "padding": info["padding"]}
        return make_item(kspace, maps, mask, kind="2d", meta=meta, undersampled=info["undersampled"])


def write_fastmri(path: str | Path, kspace: np.ndarray, *, maps: np.ndarray | None = None,
                  recon_size: tuple[int, int] | None = None, acquisition: str = "SYNTH", mask: np.ndarray | None = None,
                  attrs: Mapping[str, Any] | None = None) -> None:
    """Writes a fastMRI multi-coil file (atomically): kspace (slices, C, H, W) complex, optional
    in-file maps (slices, C, M, H, W), optional 1D test-file ``mask`` (W,). ``reconstruction_rss``
    is the RSS image center-cropped to ``recon_size`` (default: the whole (H, W))."""
    k = np.asarray(kspace)
    if k.ndim != 4 or not np.iscomplexobj(k):
        raise ValueError(f"kspace must be complex (slices, C, H, W), got shape {k.shape} dtype {k.dtype}")
    nslices, coils, h, w = k.shape
    rh, rw = recon_size or (h, w)
    image = rss(ifft2c(torch.from_numpy(k.astype(np.complex64))), dim=1)
    top, left = (h - rh) // 2, (w - rw) // 2
    recon = image[:, top:top + rh, left:left + rw].numpy().astype(np.float32)
    with atomic_h5(path) as f:
        write_complex(f, "kspace", k, chunks=(1, coils, h, w))
        f.create_dataset("reconstruction_rss", data=recon)
        f.create_dataset("ismrmrd_header", data=header_xml((h, w, 1), (rh, rw, 1), w // 2, w - 1).encode())
        if maps is not None:
            m = np.asarray(maps)
            if m.shape[:2] != (nslices, coils) or m.shape[3:] != (h, w):
                raise ValueError(f"maps have shape {m.shape}, expected ({nslices}, {coils}, M, {h}, {w})")
            write_complex(f, "maps", m, chunks=(1, *m.shape[1:]))
        if mask is not None:
            f.create_dataset("mask", data=np.asarray(mask, dtype=np.float32).reshape(w))
        f.attrs["acquisition"] = acquisition
        f.attrs["max"] = float(recon.max())
        f.attrs["norm"] = float(np.linalg.norm(recon))
        f.attrs["patient_id"] = Path(path).stem
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
