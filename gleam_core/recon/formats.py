"""Reconstructions written in the formats radiologists and pipelines open (``gleam-recon --format``).

=======  ==========================  ==========================================================
format   output                      what
=======  ==========================  ==========================================================
h5       ``<out>/<file>.h5``         fastMRI's submission layout: dataset ``reconstruction``
                                     float32 (N, h, w), attrs ``acquisition``, ``checkpoint``
nifti    ``<out>/<stem>.nii.gz``     NIfTI-1 through nibabel: voxel axes (row h, column w,
                                     slice) (cine: (h, w, 1, time)), float32 magnitudes in the
                                     data's units, affine from the voxel spacing, centred
dicom    ``<out>/<stem>/NNNN.dcm``   an MR Image Storage series through pydicom, one instance
                                     per slice (cine: per frame), magnitudes scaled to 16 bits
                                     (``RescaleSlope`` restores the data's units), geometry tags
                                     (PixelSpacing, SliceThickness, SpacingBetweenSlices,
                                     ImagePositionPatient, ImageOrientationPatient), marked
                                     DERIVED\\SECONDARY and, in ImageComments and the series
                                     description, for research use and not for diagnosis
png      ``<out>/<stem>/NNNN.png``   8-bit grayscale per slice or frame (99.5th percentile of
                                     the volume is white): for a look, not for analysis
=======  ==========================  ==========================================================

Geometry (:class:`Geometry`): the voxel spacing comes from the ISMRMRD header that fastMRI
files carry (``ismrmrd_header``): pixel spacing = field of view / matrix size of the
reconstruction space (the encoded space where no recon space is given), x along the image
rows (H, the readout) and y along the columns (W); slice thickness = the z field of view /
z matrix size, and slices are stacked one thickness apart. Files without a header (synthetic,
cine, 3D, CMRxRecon) get unit (1 mm) spacing and a warning. fastMRI files record no patient
position or orientation, so both formats place the volume the same way, centred on the
origin: in DICOM's patient axes (LPS) columns run along +x and rows along +y
(ImageOrientationPatient ``1\\0\\0\\0\\1\\0``, the standard axial), slices along +z; the
NIfTI affine maps each voxel to the same point in NIfTI's RAS axes (x and y negated). A viewer
shows the right sizes and proportions, the image as the PNG shows it, not the scanner's
position.
"""

from __future__ import annotations

import gzip
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import atomic_h5, atomic_open

FORMATS = ("h5", "nifti", "dicom", "png")
RESEARCH_NOTE = ("Research use only: reconstructed by a GLEAM network from undersampled k-space; not for diagnostic "
                 "use")
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


@dataclass(frozen=True)
class Geometry:
    """Voxel spacing in mm: ``row`` between rows (along H), ``col`` between columns (along W),
    ``slice`` between slices (and their thickness); ``source`` says where it came from."""

    row: float = 1.0
    col: float = 1.0
    slice: float = 1.0
    source: str = "unit spacing (no ISMRMRD header)"


def read_geometry(path: str | Path, shape: tuple[int, int]) -> Geometry:
    """The geometry of an (h, w) image reconstructed from data file ``path``: from its
    ``ismrmrd_header`` when it has one with fields of view, else unit spacing with a warning.
    ``shape`` picks the space: the recon space where the image has its size, else the encoded
    space (spacing does not change with a centre crop)."""
    from ..data.fastmri import parse_header
    from ..data.formats import DataFormatError, open_h5

    header = None
    try:
        with open_h5(path) as f:
            if "ismrmrd_header" in f:
                header = parse_header(f["ismrmrd_header"][()], f"{path}: 'ismrmrd_header'")
    except DataFormatError:
        header = None  # synthetic sources and other non-HDF5 inputs
    if header is not None:
        for space in ("recon", "encoded"):
            fov, size = header[f"{space}_fov_mm"], header[f"{space}_size"]
            if fov is not None and (space == "encoded" or tuple(size[:2]) == tuple(shape)):
                return Geometry(fov[0] / size[0], fov[1] / size[1], fov[2] / max(size[2], 1),
                                f"ISMRMRD header ({space} space: field of view {fov} mm, matrix {size})")
    warnings.warn(f"{path}: no ISMRMRD header with a field of view; writing unit (1 mm) voxel spacing", stacklevel=2)
    return Geometry()


def output_path(out: Path, name: str, fmt: str) -> Path:
    """Where ``fmt`` writes the reconstruction of input file ``name`` (a folder for dicom/png)."""
    stem = Path(name).stem
    return {"h5": out / name, "nifti": out / f"{stem}.nii.gz", "dicom": out / stem, "png": out / stem}[fmt]


def write_reconstruction(out: Path, name: str, fmt: str, image: np.ndarray, geometry: Geometry | None, *,
                         attrs: dict[str, str] | None = None) -> Path:
    """Writes the magnitudes ``image`` (Z, T, h, w) of input file ``name`` in ``fmt``: Z slices
    (3D: the first axis), T frames (1 unless cine). ``h5`` stores (Z, h, w) when T = 1,
    (T, h, w) for one cine slice, else (Z, T, h, w). ``geometry`` (nifti, dicom): default unit
    spacing. Returns the file or folder written."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 4:
        raise ValueError(f"image must be (Z, T, h, w), got shape {image.shape}")
    if not np.isfinite(image).all():  # 16-bit and 8-bit scaling would turn NaN into arbitrary pixels
        raise ValueError(f"image of {name} has {int((~np.isfinite(image)).sum())} non-finite values (NaN or inf); "
                         "nothing written")
    path = output_path(out, name, fmt)
    attrs = dict(attrs or {})
    geometry = geometry or Geometry()
    if fmt == "h5":
        z, t = image.shape[:2]
        with atomic_h5(path) as f:
            f.create_dataset("reconstruction", data=image[:, 0] if t == 1 else image[0] if z == 1 else image)
            for key, value in attrs.items():
                f.attrs[key] = value
    elif fmt == "nifti":
        write_nifti(path, image, geometry, description=attrs.get("checkpoint", ""))
    elif fmt == "dicom":
        write_dicom_series(path, image, geometry, name=Path(name).stem, attrs=attrs)
    else:
        write_pngs(path, image)
    return path


def patient_affine(shape: tuple[int, int, int], geometry: Geometry) -> np.ndarray:
    """Voxel (i = row, j = column, k = slice) to DICOM patient coordinates (LPS, mm), the
    volume centred on the origin: columns along +x, rows along +y, slices along +z (the
    geometry both writers record; DICOM's PixelSpacing is (between rows, between columns))."""
    h, w, z = shape
    affine = np.zeros((4, 4))
    affine[1, 0], affine[0, 1], affine[2, 2], affine[3, 3] = geometry.row, geometry.col, geometry.slice, 1.0
    affine[:3, 3] = -affine[:3, :3] @ ((np.array([h, w, z], dtype=float) - 1) / 2)
    return affine


def nifti_affine(shape: tuple[int, int, int], geometry: Geometry) -> np.ndarray:
    """:func:`patient_affine` in NIfTI's RAS axes (DICOM's LPS with x and y negated)."""
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ patient_affine(shape, geometry)


def write_nifti(path: Path, image: np.ndarray, geometry: Geometry, *, description: str = "") -> None:
    """NIfTI-1 (gzipped) of (Z, T, h, w) magnitudes: data (h, w, Z), or (h, w, Z, T) for T > 1."""
    import nibabel as nib

    data = np.ascontiguousarray(image.transpose(2, 3, 0, 1))
    if data.shape[3] == 1:
        data = data[..., 0]
    img = nib.Nifti1Image(data, nifti_affine(data.shape[:3], geometry))
    img.header.set_xyzt_units("mm")  # time unknown: the files carry no frame interval (pixdim[4] = 1 means nothing)
    img.header["descrip"] = ("GLEAM recon, research use only " + description)[:79].encode()
    with atomic_open(path, "wb") as f:
        f.write(gzip.compress(img.to_bytes(), mtime=0))


def _ds(value: float) -> str:
    """A decimal string (DICOM VR DS) within the standard's 16 characters: ``str(140 / 24)``
    has 17, which pydicom writes without complaint and strict readers refuse."""
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))


def _uid(*parts: str) -> str:
    """A UID derived from ``parts`` (reproducible outputs for one input and network)."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=[str(p) for p in parts])


def write_dicom_series(folder: Path, image: np.ndarray, geometry: Geometry, *, name: str = "",
                       attrs: dict[str, str] | None = None) -> None:
    """One MR image per slice and frame of (Z, T, h, w) magnitudes in ``folder``
    (``NNNN.dcm``, slice-major), 16-bit with RescaleSlope."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    attrs = attrs or {}
    nz, nt, h, w = image.shape
    peak = float(image.max())
    slope = float(_ds(peak / 65535.0)) if peak > 0 else 1.0      # the value written, so pixels match it
    pixels = np.clip(np.rint(image / slope), 0, 65535).astype(np.uint16)
    key = (name, attrs.get("checkpoint", ""), str(image.shape), f"{peak:.9g}")
    study, series, frame_of_ref = _uid("study", *key), _uid("series", *key), _uid("for", *key)
    to_patient = patient_affine((h, w, nz), geometry)
    folder.mkdir(parents=True, exist_ok=True)
    for z in range(nz):
        for t in range(nt):
            number = z * nt + t + 1
            sop = _uid("instance", str(number), *key)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE
            meta.MediaStorageSOPInstanceUID = sop
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = MR_IMAGE_STORAGE, sop
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
            ds.Modality = "MR"
            ds.ImageType = ["DERIVED", "SECONDARY"]
            ds.PatientName, ds.PatientID = "Anonymous", (name or "anonymous")[:64]  # LO: 64 characters at most
            ds.SeriesDescription = f"GLEAM recon (research use only) {name}"[:64]
            ds.ImageComments = RESEARCH_NOTE
            ds.DerivationDescription = f"GLEAM network {attrs.get('checkpoint', '')}"[:1024]
            ds.BurnedInAnnotation = "NO"
            ds.SeriesNumber, ds.InstanceNumber = 1, number
            position = to_patient @ np.array([0.0, 0.0, z, 1.0])      # the centre of the first pixel sent
            ds.ImagePositionPatient = [_ds(v) for v in position[:3]]
            ds.ImageOrientationPatient = [_ds(v) for v in (*to_patient[:3, 1] / geometry.col,
                                                            *to_patient[:3, 0] / geometry.row)]
            ds.SliceLocation = _ds(position[2])
            ds.PixelSpacing = [_ds(geometry.row), _ds(geometry.col)]
            ds.SliceThickness = _ds(geometry.slice)
            ds.SpacingBetweenSlices = _ds(geometry.slice)
            if nt > 1:
                ds.TemporalPositionIdentifier, ds.NumberOfTemporalPositions = t + 1, nt
            ds.Rows, ds.Columns = h, w
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", _ds(slope), "US"
            ds.WindowCenter, ds.WindowWidth = _ds(peak / 2), _ds(peak)
            ds.PixelData = pixels[z, t].tobytes()
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            with atomic_open(folder / f"{number:04d}.dcm", "wb") as f:
                f.write(buf.getvalue())


def write_pngs(folder: Path, image: np.ndarray) -> None:
    """One 8-bit PNG per slice and frame of (Z, T, h, w) (``NNNN.png``, slice-major); the
    volume's 99.5th percentile is white."""
    from PIL import Image

    white = float(np.quantile(image, 0.995)) or 1.0
    folder.mkdir(parents=True, exist_ok=True)
    for number, plane in enumerate(image.reshape(-1, *image.shape[2:]), 1):
        with atomic_open(folder / f"{number:04d}.png", "wb") as f:
            Image.fromarray(np.clip(plane / white * 255.0, 0, 255).astype(np.uint8)).save(f, format="PNG")
