"""Reconstructions written as h5, NIfTI, DICOM and PNG, read back with h5py, nibabel, pydicom
and PIL: values, shapes and geometry (spacing from the ISMRMRD header, positions, orientation),
and the DICOM marks of a derived, research-only image."""

from __future__ import annotations

import gzip
import warnings

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from gleam_core.recon.formats import Geometry, output_path, read_geometry, write_reconstruction

from data_files import coil_data, write_fastmri_by_hand

GEOMETRY = Geometry(row=0.5, col=0.75, slice=3.0, source="test")


def _image(z=3, t=1, h=20, w=16, seed=0):
    return np.random.default_rng(seed).uniform(0.1, 2.0, size=(z, t, h, w)).astype(np.float32)


def test_geometry_from_the_ismrmrd_header(tmp_path):
    kspace, _ = coil_data(2, 2, 32, 32)
    write_fastmri_by_hand(tmp_path / "f.h5", kspace, first=0, end=32, recon=(24, 24))
    g = read_geometry(tmp_path / "f.h5", (24, 24))        # recon space: 140 x 140 x 3 mm, matrix 24 x 24 x 1
    assert (g.row, g.col, g.slice) == pytest.approx((140 / 24, 140 / 24, 3.0)) and "recon space" in g.source
    g = read_geometry(tmp_path / "f.h5", (32, 32))        # an uncropped image: the encoded space, 280 x 140 x 4.5
    assert (g.row, g.col, g.slice) == pytest.approx((280 / 32, 140 / 32, 4.5)) and "encoded space" in g.source
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f.create_dataset("kspace", data=kspace)
    with pytest.warns(UserWarning, match="plain.h5: no ISMRMRD header.*unit"):
        assert read_geometry(tmp_path / "plain.h5", (32, 32)) == Geometry()


def test_nifti_round_trip(tmp_path):
    image = _image()
    path = write_reconstruction(tmp_path, "vol.h5", "nifti", image, GEOMETRY, attrs={"checkpoint": "best.pt"})
    assert path == tmp_path / "vol.nii.gz" and gzip.open(path).read(4)  # gzipped
    img = nib.load(path)
    data = np.asarray(img.dataobj)
    assert data.shape == (20, 16, 3)                                              # (rows, columns, slices)
    np.testing.assert_array_equal(data, image[:, 0].transpose(1, 2, 0))
    assert img.header.get_zooms() == pytest.approx((0.5, 0.75, 3.0))
    assert img.header.get_xyzt_units() == ("mm", "unknown")                       # no frame interval is known
    centre = img.affine @ np.array([(20 - 1) / 2, (16 - 1) / 2, 1, 1])          # the volume is centred
    np.testing.assert_allclose(centre[:3], 0, atol=1e-9)
    # RAS: a step down the rows goes posterior (-y), along a row to the patient's left (-x)
    np.testing.assert_allclose(img.affine[:3, :3], [[0, -0.75, 0], [-0.5, 0, 0], [0, 0, 3.0]])
    cine = write_reconstruction(tmp_path, "cine.h5", "nifti", _image(z=2, t=5), GEOMETRY)
    assert nib.load(cine).shape == (20, 16, 2, 5)


def test_dicom_round_trip(tmp_path):
    image = _image(z=4)
    folder = write_reconstruction(tmp_path, "vol.h5", "dicom", image, GEOMETRY, attrs={"checkpoint": "best.pt"})
    files = sorted(folder.glob("*.dcm"))
    assert folder == tmp_path / "vol" and len(files) == 4
    series = [pydicom.dcmread(f) for f in files]
    positions = np.array([ds.ImagePositionPatient for ds in series], dtype=float)
    for i, ds in enumerate(series):
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and ds.Modality == "MR"   # MR Image Storage
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert "not for diagnostic use" in ds.ImageComments and "research use" in ds.SeriesDescription
        assert ds.Rows == 20 and ds.Columns == 16 and ds.BitsStored == 16 and ds.pixel_array.dtype == np.uint16
        assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.75]
        assert float(ds.SliceThickness) == 3.0 and float(ds.SpacingBetweenSlices) == 3.0
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert ds.InstanceNumber == i + 1 and ds.SeriesInstanceUID == series[0].SeriesInstanceUID
        restored = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(restored, image[i, 0], atol=float(ds.RescaleSlope))   # 16-bit quantization
    np.testing.assert_allclose(np.diff(positions[:, 2]), 3.0)                       # one thickness apart
    # IOP 1\\0\\0\\0\\1\\0: columns along x (0.75 mm apart), rows along y (0.5 mm): centred corner
    np.testing.assert_allclose(positions[:, :2], [[-0.75 * 15 / 2, -0.5 * 19 / 2]] * 4)
    assert int(max(ds.pixel_array.max() for ds in series)) == 65535                 # the full 16 bits used
    frames = write_reconstruction(tmp_path, "cine.h5", "dicom", _image(z=1, t=3), GEOMETRY)
    cine = [pydicom.dcmread(f) for f in sorted(frames.glob("*.dcm"))]
    assert [ds.TemporalPositionIdentifier for ds in cine] == [1, 2, 3]
    assert len({tuple(ds.ImagePositionPatient) for ds in cine}) == 1               # frames share the position


def test_h5_and_png(tmp_path):
    image = _image()
    path = write_reconstruction(tmp_path, "vol.h5", "h5", image, None, attrs={"acquisition": "CORPD_FBK"})
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["reconstruction"][()], image[:, 0])
        assert f.attrs["acquisition"] == "CORPD_FBK"
    with h5py.File(write_reconstruction(tmp_path, "cine.h5", "h5", _image(z=1, t=4), None)) as f:
        assert f["reconstruction"].shape == (4, 20, 16)
    folder = write_reconstruction(tmp_path, "vol.h5", "png", image, None)
    pngs = sorted(folder.glob("*.png"))
    assert [p.name for p in pngs] == ["0001.png", "0002.png", "0003.png"]
    first = np.asarray(Image.open(pngs[0]))
    assert first.shape == (20, 16) and first.dtype == np.uint8 and first.max() == 255
    assert output_path(tmp_path, "a.h5", "dicom") == tmp_path / "a"
    with pytest.raises(ValueError, match="format must be one of"):
        write_reconstruction(tmp_path, "vol.h5", "tiff", image, None)
    with pytest.raises(ValueError, match=r"\(Z, T, h, w\)"):
        write_reconstruction(tmp_path, "vol.h5", "h5", image[:, 0], None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        write_reconstruction(tmp_path, "vol.h5", "nifti", image, None)    # no geometry given: unit spacing, silently


def _dicom_points(ds: pydicom.Dataset, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """LPS positions (mm) of pixels (rows, cols) of one instance, by the standard's formula
    (PS3.3 C.7.6.2.1.1): IPP + along-row cosine * column spacing * c + along-column cosine * row spacing * r."""
    ipp = np.array(ds.ImagePositionPatient, dtype=float)
    iop = np.array(ds.ImageOrientationPatient, dtype=float)
    dr, dc = (float(v) for v in ds.PixelSpacing)
    return ipp + np.outer(cols * dc, iop[:3]) + np.outer(rows * dr, iop[3:])


def test_nifti_and_dicom_place_every_voxel_alike(tmp_path):
    """The same voxel lands on the same point in both files (NIfTI RAS = DICOM LPS with x, y
    negated), with the same value, for an anisotropic, non-square volume: a transposed or
    miscentred geometry in either writer fails here."""
    geometry = Geometry(row=140 / 24, col=0.7, slice=4.5 / 7, source="test")  # spacings of 17-digit reprs
    image = _image(z=3, h=12, w=9, seed=3)
    img = nib.load(write_reconstruction(tmp_path, "v.h5", "nifti", image, geometry))
    series = [pydicom.dcmread(f) for f in sorted(write_reconstruction(tmp_path, "v.h5", "dicom", image,
                                                                      geometry).glob("*.dcm"))]
    rows, cols = np.meshgrid(np.arange(12), np.arange(9), indexing="ij")
    rows, cols = rows.ravel(), cols.ravel()
    data = np.asarray(img.dataobj)
    centres = []
    for z, ds in enumerate(series):
        lps = _dicom_points(ds, rows, cols)
        ras = (img.affine @ np.stack([rows, cols, np.full_like(rows, z), np.ones_like(rows)]))[:3].T
        np.testing.assert_allclose(ras * [-1, -1, 1], lps, atol=1e-4)
        restored = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_allclose(restored[rows, cols], data[rows, cols, z], atol=float(ds.RescaleSlope))
        normal = np.cross(*np.reshape(np.array(ds.ImageOrientationPatient, dtype=float), (2, 3)))
        assert float(np.dot(lps[0], normal)) == pytest.approx(float(ds.SliceLocation), abs=1e-4)
        centres.append(lps.mean(axis=0))
        for name in ("PixelSpacing", "ImagePositionPatient", "SliceThickness", "RescaleSlope", "WindowWidth"):
            value = ds.data_element(name).value
            assert all(len(str(v)) <= 16 for v in (value if isinstance(value, list | pydicom.multival.MultiValue)
                                                    else [value])), (name, value)
    np.testing.assert_allclose(np.mean(centres, axis=0), 0, atol=1e-4)      # centred on the origin
    np.testing.assert_allclose(np.diff([c[2] for c in centres]), 4.5 / 7, rtol=1e-6)


def test_non_finite_images_are_refused(tmp_path):
    image = _image()
    image[1, 0, 3, 4] = np.nan
    for fmt in ("h5", "dicom"):
        with pytest.raises(ValueError, match=r"image of vol\.h5 has 1 non-finite"):
            write_reconstruction(tmp_path, "vol.h5", fmt, image, None)
    assert not list(tmp_path.iterdir())
