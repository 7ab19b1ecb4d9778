"""Synthetic data (content, determinism, motion, noise), the gleam-data CLI, and the ISMRMRD
converter on files written with the ismrmrd package itself."""

import numpy as np
import pytest
import torch

import gleam_core.data as D
from gleam_core.cli.data import main
from gleam_core.data.synthetic import SynthConfig, synth_volume
from gleam_core.ops import fftnc, ifftnc


def _image(kind, seed=0, **kw):
    cfg = SynthConfig(kind, **kw)
    k, m = synth_volume(cfg, seed, 0)
    return k, m, cfg


def test_phantoms_have_structure_texture_and_edges():
    for kind in ("knee2d", "brain2d"):
        k, m, _ = _image(kind, shape=(96, 96), coils=4, slices=3, noise=0.0)
        img = (m[1, :, 0].conj() * torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k[1], dim=(-2, -1)),
                                                                         norm="ortho"), dim=(-2, -1))).sum(0).abs()
        obj = img[img > 0.1 * img.max()]
        assert obj.numel() > 0.25 * img.numel()                        # an object fills the field of view
        assert len(torch.unique((obj * 100).round())) > 50             # many intensity levels, not flat regions
        spectrum = torch.fft.fftshift(torch.fft.fft2(img)).abs() ** 2
        yy, xx = torch.meshgrid(torch.arange(96) - 48, torch.arange(96) - 48, indexing="ij")
        high = spectrum[(yy.abs() > 16) | (xx.abs() > 16)].sum() / spectrum.sum()
        assert high > 1e-3                                             # fine detail beyond the central third
        grad = (img[1:, :] - img[:-1, :]).abs()
        assert (grad > 0.2 * img.max()).sum() > 50                     # sharp edges


def test_coil_maps_are_normalized_and_smooth():
    k, m, _ = _image("brain2d", shape=(64, 64), coils=6, slices=1)
    assert torch.allclose(m.abs().pow(2).sum(1), torch.ones(1, 1, 64, 64), atol=1e-5)
    assert (m[0, :, 0, 1:] - m[0, :, 0, :-1]).abs().max() < 0.1       # no jumps between neighbours


def test_deterministic_per_seed_and_noise_level():
    a = D.SyntheticDataset("brain2d", 4, seed=3, shape=(48, 48), coils=2, slices=2)
    b = D.SyntheticDataset("brain2d", 4, seed=3, shape=(48, 48), coils=2, slices=2)
    c = D.SyntheticDataset("brain2d", 4, seed=4, shape=(48, 48), coils=2, slices=2)
    assert torch.equal(a[3]["kspace"], b[3]["kspace"]) and not torch.equal(a[3]["kspace"], c[3]["kspace"])
    assert not torch.allclose(a[2]["target"], a[3]["target"])          # neighbouring slices differ
    clean, _, cfg = _image("knee2d", shape=(64, 48), coils=2, slices=1, noise=0.0)
    noisy, _, _ = _image("knee2d", shape=(64, 48), coils=2, slices=1, noise=0.05)
    mag = ifftnc(clean, (-2, -1)).abs().pow(2).sum(1).sqrt().flatten()   # the object's magnitude (maps normalized)
    expected = 0.05 * float(mag[mag > 0.1 * mag.max()].mean())
    measured = float((noisy - clean).abs().pow(2).mean().sqrt())
    assert abs(measured / expected - 1) < 0.1


def test_cine_motion_is_periodic():
    k, m, cfg = _image("cine", shape=(8, 48, 48), coils=2, noise=0.0)
    frames = ifftnc(k, (-2, -1)).abs().pow(2).sum(0).sqrt()           # (T, H, W) coil-combined magnitude
    moving = (frames[0] - frames[4]).abs()                             # diastole vs systole
    assert moving.max() > 0.3 * frames.max() and (moving > 0.05 * frames.max()).float().mean() > 0.005
    for t in range(1, 4):                                              # cardiac phases t/T and 1 - t/T match
        assert torch.allclose(frames[t], frames[8 - t], atol=1e-4 * float(frames.max()))


def test_cli_synth_summary_split_inspect(tmp_path, capsys):
    out = tmp_path / "knee"
    args = ["synth", "--kind", "knee2d", "--n", "3", "--out", str(out), "--shape", "32", "24", "--coils", "2",
            "--slices", "2", "--quiet"]
    assert main(args) == 0
    files = sorted(out.glob("*.h5"))
    assert len(files) == 3
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert main(args) == 0                                            # rerun keeps finished files
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert main(["summary", "--in", str(out)]) == 0
    assert "3 files, 6 slices" in capsys.readouterr().out
    assert main(["split", "--in", str(out), "--val", "0.34", "--out", str(tmp_path / "lists")]) == 0
    train = (tmp_path / "lists" / "train.txt").read_text().split()
    val = (tmp_path / "lists" / "val.txt").read_text().split()
    assert len(train) + len(val) == 3 and not set(train) & set(val)
    assert len(D.FastMRIDataset(tmp_path / "lists" / "train.txt", verbose=False)) == 2 * len(train)
    assert main(["inspect", str(files[0])]) == 0
    assert "kspace: shape (2, 2, 32, 24)" in capsys.readouterr().out
    assert main(["summary", "--in", str(tmp_path / "missing")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_cli_maps_and_bad_kind(tmp_path, capsys):
    main(["synth", "--kind", "brain2d", "--n", "1", "--out", str(tmp_path), "--shape", "32", "32", "--coils", "2",
          "--slices", "1", "--quiet"])
    assert main(["maps", "--in", str(tmp_path), "--out", str(tmp_path / "m"), "--calib", "12", "--quiet"]) == 0
    assert "1 computed" in capsys.readouterr().out
    assert len(D.FastMRIDataset(tmp_path, maps="sidecar", maps_dir=tmp_path / "m", verbose=False)) == 1
    with pytest.raises(SystemExit):
        main(["synth", "--kind", "liver", "--n", "1", "--out", str(tmp_path)])


# ---- ISMRMRD --------------------------------------------------------------------------------

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
