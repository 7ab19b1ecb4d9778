"""The ISMRMRD converter (gleam-data convert): raw files written with the ismrmrd package
itself, fully sampled and undersampled, into the 3D volume format with maps."""

import numpy as np
import pytest
import torch

import gleam_core.data as D
from gleam_core.cli.data import main
from gleam_core.data.synthetic import SynthConfig, synth_volume
from gleam_core.ops import fftnc, ifftnc

ismrmrd = pytest.importorskip("ismrmrd")


def _write_ismrmrd(path, kspace, sampled, *, center_shift=0, oversample=1, averages=()):
    """An ISMRMRD file made with the ismrmrd package: kspace (C, X, Y, Z), one readout per
    sampled (y, z), a leading noise scan, and repeated readouts at ``averages``."""
    coils, x, ny, nz = kspace.shape
    hdr = ismrmrd.xsd.ismrmrdHeader(
        experimentalConditions=ismrmrd.xsd.experimentalConditionsType(H1resonanceFrequency_Hz=127_000_000))
    fov = ismrmrd.xsd.fieldOfViewMm(x=160.0, y=160.0, z=160.0)
    space = ismrmrd.xsd.encodingSpaceType(matrixSize=ismrmrd.xsd.matrixSizeType(x=x, y=ny, z=nz), fieldOfView_mm=fov)
    limits = ismrmrd.xsd.encodingLimitsType(
        kspace_encoding_step_1=ismrmrd.xsd.limitType(minimum=0, maximum=ny - 1, center=ny // 2 - center_shift),
        kspace_encoding_step_2=ismrmrd.xsd.limitType(minimum=0, maximum=nz - 1, center=nz // 2))
    hdr.encoding.append(ismrmrd.xsd.encodingType(encodedSpace=space, reconSpace=space, encodingLimits=limits,
                                                 trajectory=ismrmrd.xsd.trajectoryType.CARTESIAN))
    k = torch.from_numpy(kspace)
    if oversample > 1:   # a readout with twice the field of view: pad the image along x
        img = ifftnc(k, 1)
        pad = (oversample - 1) * x // 2
        k = fftnc(torch.nn.functional.pad(img, (0, 0, 0, 0, pad, pad)), 1)
    k = k.numpy().astype(np.complex64)
    ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    ds.write_xml_header(ismrmrd.xsd.ToXML(hdr))
    noise = ismrmrd.Acquisition.from_array(np.ones((coils, k.shape[1]), np.complex64) * 100)
    noise.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    ds.append_acquisition(noise)
    for y, z in zip(*np.nonzero(sampled)):
        reps = [k[:, :, y, z]] if (y, z) not in averages else [k[:, :, y, z] * 1.5, k[:, :, y, z] * 0.5]
        for data in reps:
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(data))
            acq.idx.kspace_encode_step_1 = int(y) - center_shift
            acq.idx.kspace_encode_step_2 = int(z)
            acq.center_sample = k.shape[1] // 2
            ds.append_acquisition(acq)
    ds.close()


def test_ismrmrd_convert_fully_sampled(tmp_path):
    cfg = SynthConfig("knee3d", (16, 32, 28), coils=4, noise=0.01)
    k, m = synth_volume(cfg, 1, 0)
    sampled = np.ones((32, 28), bool)
    _write_ismrmrd(tmp_path / "raw.h5", k.numpy(), sampled, oversample=2, averages={(16, 14), (3, 5)})
    assert main(["convert", "--in", str(tmp_path / "raw.h5"), "--out", str(tmp_path / "out"), "--calib", "16",
                 "--quiet"]) == 0
    ds = D.Volume3DDataset(tmp_path / "out", verbose=False)
    item = ds[0]
    scale = item["meta"]["scale"]
    assert torch.allclose(item["kspace"] / scale, k, atol=1e-4 * float(k.abs().max()))   # every line in place
    # ESPIRiT maps against the true coil sensitivities, inside the object
    img = (m[:, 0].conj() * ifftnc(k, (-3, -2, -1))).sum(0).abs()
    inside = img > 0.15 * img.max()
    est = item["maps"][:, 0]
    agree = (est.conj() * m[:, 0]).sum(0).abs() / est.abs().pow(2).sum(0).sqrt().clamp_min(1e-12)
    assert agree[inside].mean() > 0.97 and (agree[inside] > 0.95).float().mean() > 0.97
    import h5py
    with h5py.File(tmp_path / "out" / "raw.h5") as f:
        assert "mask" not in f and f.attrs["source"] == "raw.h5"


def test_ismrmrd_convert_undersampled_and_errors(tmp_path):
    cfg = SynthConfig("knee3d", (8, 24, 20), coils=2, noise=0.0)
    k, _ = synth_volume(cfg, 2, 0)
    sampled = np.zeros((24, 20), bool)
    sampled[::2] = True
    sampled[8:16, 6:14] = True
    sampled[:2] = False                                   # not encodable with the shifted center
    _write_ismrmrd(tmp_path / "us.h5", k.numpy(), sampled, center_shift=2)
    assert main(["convert", "--in", str(tmp_path / "us.h5"), "--out", str(tmp_path / "out"), "--calib", "8",
                 "--kernel", "4", "--quiet"]) == 0
    import h5py
    with h5py.File(tmp_path / "out" / "us.h5") as f:
        assert f.attrs.get("gleam_format") == "vol3d"
        assert np.array_equal(f["mask"][()] > 0, sampled)
        assert np.allclose(f["kspace"][()][:, :, ~sampled], 0)
    before = (tmp_path / "us.h5").read_bytes()
    assert main(["convert", "--in", str(tmp_path / "us.h5"), "--out", str(tmp_path), "--quiet"]) == 1
    assert (tmp_path / "us.h5").read_bytes() == before               # never overwrites its input
    (tmp_path / "junk.h5").write_text("no")
    assert main(["convert", "--in", str(tmp_path / "junk.h5"), "--out", str(tmp_path / "o"), "--quiet"]) == 1


def test_ismrmrd_convert_missing_input_and_file_as_out(tmp_path, capsys):
    assert main(["convert", "--in", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "missing.h5" in err and "does not exist" in err and "Errno" not in err
    assert main(["convert", "--in", str(tmp_path), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "is a folder, not an ISMRMRD file" in capsys.readouterr().err
    cfg = SynthConfig("knee3d", (8, 16, 16), coils=2, noise=0.0)
    _write_ismrmrd(tmp_path / "raw.h5", synth_volume(cfg, 0, 0)[0].numpy(), np.ones((16, 16), bool))
    (tmp_path / "afile").write_text("x")
    assert main(["convert", "--in", str(tmp_path / "raw.h5"), "--out", str(tmp_path / "afile"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'afile'} is a file, not a folder" in err and "Errno" not in err
