"""ISMRMRD raw data (how mridata.org distributes its 3D knee scans) to the vol3d format.

Reads a Cartesian 3D acquisition with the ``ismrmrd`` package: the header's first encoding
gives the matrix (x = readout, y, z = phase encodes) and the encoding limits' centers; every
imaging readout (noise, navigator, phase-correction and other non-imaging scans are left out)
is placed at (kspace_encode_step_1, kspace_encode_step_2), shifted so that each limit's
center lands at index n // 2 (fastMRI's centered convention), and repeated readouts
(averages) are averaged. A readout longer than the encoded x (oversampling) is cropped to it
in the image domain. Positions never acquired stay zero and are written as the file's
``mask`` (H, W). Maps come from ESPIRiT on the ky-kz slices of the readout-transformed data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..ops import fftnc, ifftnc
from .espirit import espirit_maps_volume
from .formats import DataFormatError
from .volume import write_volume

_SKIP_FLAGS = ("ACQ_IS_NOISE_MEASUREMENT", "ACQ_IS_NAVIGATION_DATA", "ACQ_IS_PHASECORR_DATA", "ACQ_IS_DUMMYSCAN_DATA",
               "ACQ_IS_HPFEEDBACK_DATA", "ACQ_IS_RTFEEDBACK_DATA", "ACQ_IS_SURFACECOILCORRECTIONSCAN_DATA",
               "ACQ_IS_PHASE_STABILIZATION_REFERENCE", "ACQ_IS_PHASE_STABILIZATION")


def _import_ismrmrd():
    try:
        import ismrmrd
    except ImportError as exc:
        raise RuntimeError("converting ISMRMRD files needs the 'ismrmrd' package: pip install 'gleam-core[ismrmrd]' "
                           "(or pip install ismrmrd)") from exc
    return ismrmrd


def _center(limit: Any, size: int) -> int:
    """Index offset that moves the encoding limit's center to size // 2 (0 without limits)."""
    if limit is None:
        return 0
    return size // 2 - int(limit.center)


def read_ismrmrd_kspace(path: str | Path, *, progress: bool = True) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Centered k-space (C, X, Y, Z) complex64, the sampled (Y, Z) positions, and header facts."""
    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"{p}: the ISMRMRD file does not exist")
    if p.is_dir():
        raise DataFormatError(f"{p}: is a folder, not an ISMRMRD file")
    ismrmrd = _import_ismrmrd()
    from tqdm import tqdm

    try:
        ds = ismrmrd.Dataset(str(p), "dataset", create_if_needed=False, mode="r")
        xml = ds.read_xml_header()
    except (OSError, LookupError, KeyError) as exc:
        raise DataFormatError(f"{p}: not an ISMRMRD dataset file ({exc})") from exc
    try:
        header = ismrmrd.xsd.CreateFromDocument(xml)
        enc = header.encoding[0]
        nx, ny, nz = (int(getattr(enc.encodedSpace.matrixSize, a)) for a in "xyz")
        limits = enc.encodingLimits
        off_y = _center(limits.kspace_encoding_step_1 if limits else None, ny)
        off_z = _center(limits.kspace_encoding_step_2 if limits else None, nz)
        skip = [getattr(ismrmrd, name) for name in _SKIP_FLAGS]
        n_acq = ds.number_of_acquisitions()
        if n_acq == 0:
            raise DataFormatError(f"{p}: the ISMRMRD dataset has no acquisitions")
        kspace = counts = None
        for i in tqdm(range(n_acq), desc=f"read {p.name}", unit="line", disable=not progress, mininterval=1.0):
            acq = ds.read_acquisition(i)
            if any(acq.is_flag_set(flag) for flag in skip):
                continue
            data = np.asarray(acq.data)                                     # (C, samples)
            if kspace is None:
                coils, samples = data.shape
                kspace = np.zeros((coils, samples, ny, nz), dtype=np.complex64)
                counts = np.zeros((ny, nz), dtype=np.int32)
                center_sample = int(acq.center_sample) if acq.center_sample else samples // 2
            if data.shape != kspace.shape[:2]:
                raise DataFormatError(f"{p}: acquisition {i} has data shape {data.shape}, expected "
                                      f"{kspace.shape[:2]} like the first imaging readout")
            y, z = int(acq.idx.kspace_encode_step_1) + off_y, int(acq.idx.kspace_encode_step_2) + off_z
            if not (0 <= y < ny and 0 <= z < nz):
                raise DataFormatError(f"{p}: acquisition {i} encodes (ky, kz) = ({y - off_y}, {z - off_z}), outside "
                                      f"the encoded matrix ({ny}, {nz}) after centering")
            kspace[:, :, y, z] += data
            counts[y, z] += 1
    finally:
        ds.close()
    if kspace is None:
        raise DataFormatError(f"{p}: no imaging acquisitions (all {n_acq} are noise/navigator/calibration scans)")
    sampled = counts > 0
    kspace[:, :, sampled] /= counts[sampled]
    k = torch.from_numpy(kspace)
    samples = k.shape[1]
    shift = samples // 2 - center_sample                                   # asymmetric echo: center the peak
    if shift:
        k = torch.roll(k, shift, dims=1)
    if samples > nx:                                                       # readout oversampling
        lo = (samples - nx) // 2
        k = fftnc(ifftnc(k, 1)[:, lo:lo + nx], 1)
    info = header.measurementInformation
    facts = {"encoded_size": (nx, ny, nz), "coils": int(k.shape[0]), "acquisitions": n_acq,
             "acquisition": (info.protocolName if info is not None and info.protocolName else "ISMRMRD")}
    return k.numpy(), sampled, facts


def convert_ismrmrd(in_path: str | Path, out_path: str | Path, *, device: str = "cpu", progress: bool = True,
                    **espirit: Any) -> Path:
    """Converts one ISMRMRD file to vol3d (atomically), computing ESPIRiT maps (keywords as
    :func:`~gleam_core.data.espirit.espirit_maps`). Returns the output path."""
    if Path(out_path).resolve() == Path(in_path).resolve():
        raise ValueError(f"convert: the output {out_path} would overwrite its input; choose another --out")
    kspace, sampled, facts = read_ismrmrd_kspace(in_path, progress=progress)
    k = torch.from_numpy(kspace)
    maps = espirit_maps_volume(k.to(device), **espirit).cpu()
    attrs = {"acquisition": facts["acquisition"], "source": Path(in_path).name,
             "encoded_size": np.asarray(facts["encoded_size"])}
    write_volume(out_path, k, maps, mask=None if sampled.all() else sampled, attrs=attrs)
    return Path(out_path)
