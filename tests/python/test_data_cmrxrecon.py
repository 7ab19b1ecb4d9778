"""CMRxRecon challenge files, written here with plain h5py exactly as MATLAB's ``save -v7.3``
stores them (variables of MATLAB size (kx, ky, coil, slice, time) stored with axes reversed,
complex as a compound of real/imag, MATLAB_class attributes, 512-byte user block), in the
folder layouts of the 2023 and 2024 releases; read through the dataset interface, detected,
mapped by ESPIRiT, masked by the challenge's masks; malformed files refused naming file and key."""

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from gleam_core.cli.data import main as data_main
from gleam_core.data import (CmrxReconDataset, DataFormatError, UniformMask1D, mask_from_spec, open_dataset,
                             read_mask_file, write_cmrxrecon, write_cmrxrecon_mask)
from gleam_core.data.formats import CMRXRECON, file_format

from data_files import fft2c_np, ifft2c_np

KX, KY, COILS, SLICES, FRAMES = 32, 28, 4, 3, 5


def _matlab_save(path: Path, name: str, array: np.ndarray) -> None:
    """What MATLAB writes for ``save(path, name, '-v7.3')``, by hand: reversed axes, compound
    real/imag for complex data, the MATLAB_class attribute, MATLAB's header in the user block."""
    stored = np.ascontiguousarray(array.transpose(tuple(reversed(range(array.ndim)))))
    with h5py.File(path, "w", userblock_size=512) as f:
        if np.iscomplexobj(stored):
            data = np.empty(stored.shape, dtype=[("real", "<f4"), ("imag", "<f4")])
            data["real"], data["imag"] = stored.real, stored.imag
            ds = f.create_dataset(name, data=data, chunks=True, compression="gzip")
            ds.attrs["MATLAB_class"] = np.bytes_("single")
        else:
            ds = f.create_dataset(name, data=stored.astype(np.float64))
            ds.attrs["MATLAB_class"] = np.bytes_("double")
    with open(path, "r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Apr 10 00:00:00 2023 HDF5 schema 1.00 .")


def _cine_matlab(seed: int = 0) -> np.ndarray:
    """A multi-coil cine stack in MATLAB's order (kx, ky, coil, slice, time), complex64: per
    slice and frame a textured ellipse whose size beats with time, seen by smooth coils."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(-1, 1, KX), np.linspace(-1, 1, KY), indexing="ij")
    centers = rng.uniform(-0.8, 0.8, size=(COILS, 2))
    coils = np.stack([np.exp(-((x - cx) ** 2 + (y - cy) ** 2)) * np.exp(1j * (cx * x + cy * y)) for cx, cy in centers])
    coils /= np.sqrt((np.abs(coils) ** 2).sum(0))
    texture = rng.uniform(0.5, 1.0, size=(SLICES, KX, KY)) * np.exp(1j * rng.uniform(-0.3, 0.3, size=(SLICES, KX, KY)))
    k = np.empty((SLICES, COILS, FRAMES, KX, KY), dtype=np.complex64)
    for z in range(SLICES):
        for t in range(FRAMES):
            r = 0.5 + 0.1 * np.sin(2 * np.pi * t / FRAMES) + 0.05 * z
            image = texture[z] * ((x / 0.8) ** 2 + (y / r) ** 2 < 1)
            k[z, :, t] = fft2c_np(coils * image)
    return k.transpose(3, 4, 1, 0, 2)                                          # (kx, ky, C, Z, T)


def _uniform_matlab(r: int, calib: int) -> np.ndarray:
    """The challenge's UniformSampling.m in numpy: zpad(ones(nx, calib), [nx, ny]); mask(:, 1:R:end) = 1."""
    m = np.zeros((KX, KY))
    first = KY // 2 + int(np.ceil(-calib / 2))          # zpad: floor(s/2) + 1 + ceil(-m/2), 1-based
    m[:, first:first + calib] = 1
    m[:, ::r] = 1
    return m


def _kt_uniform_matlab(ny: int, nt: int, r: int, calib: int) -> np.ndarray:
    """CMRxRecon 2024's ktUniformSampling.m (with ktdup.m) in numpy, line by line, as (t, ky):
    the Toeplitz lattice of the ky and t patterns, its points moved to (ph, ti) coordinates
    and back (with the script's ``floor(nt)/2``), plus the zpad-centred ACS lines."""
    from scipy.linalg import toeplitz

    ptmp, ttmp = np.zeros(ny), np.zeros(nt)
    ptmp[np.arange(0, ny, r)], ttmp[np.arange(0, nt, r)] = 1, 1
    ind = np.flatnonzero(toeplitz(ptmp, ttmp).T.ravel()) + 1              # MATLAB find: column-major, 1-based
    ph = np.remainder(ind - 1, ny) - ny // 2
    ti = np.floor((ind - 1) / ny) - nt / 2                                # floor(nt)/2, as written
    pt = (ti + np.ceil((nt + 1) / 2) - 1) * ny + ph + np.ceil((ny + 1) / 2)   # ktdup: no duplicates here
    assert len(np.unique(pt)) == len(pt)
    ph = pt - np.floor((pt - 1) / ny) * ny - np.ceil((ny + 1) / 2)
    ti = np.ceil(pt / ny) - np.ceil((nt + 1) / 2)
    ind = np.floor(ny * (ti + nt // 2) + (ph + ny // 2 + 1) + 0.5).astype(int)  # MATLAB round (halves up here)
    samp = np.zeros(ny * nt)
    samp[np.maximum(ind, 1) - 1] = 1
    out = samp.reshape(nt, ny)
    first = ny // 2 + int(np.ceil(-calib / 2))
    out[:, first:first + calib] = 1
    return out


@pytest.fixture
def full_2023(tmp_path):
    """MultiCoil/Cine/TrainingSet/FullSample/P001/cine_sax.mat (2023 release, 'kspace_full')."""
    folder = tmp_path / "MultiCoil" / "Cine" / "TrainingSet" / "FullSample" / "P001"
    folder.mkdir(parents=True)
    k = _cine_matlab()
    _matlab_save(folder / "cine_sax.mat", "kspace_full", k)
    return folder / "cine_sax.mat", k


def _maps(path, **kw):
    assert data_main(["maps", "--in", str(path), "--quiet", "--calib", "16", *kw.get("extra", [])]) == 0


def test_layout_is_matlab_v73_and_our_writer_matches_it(full_2023, tmp_path):
    path, k = full_2023
    with open(path, "rb") as raw:
        assert raw.read(19) == b"MATLAB 7.3 MAT-file"
    ours = tmp_path / "ours.mat"
    write_cmrxrecon(ours, k)
    with h5py.File(path, "r") as a, h5py.File(ours, "r") as b:
        assert a["kspace_full"].shape == (FRAMES, SLICES, COILS, KY, KX) == b["kspace_full"].shape
        assert a["kspace_full"].dtype.names == ("real", "imag") == b["kspace_full"].dtype.names
        assert b["kspace_full"].attrs["MATLAB_class"] == b"single"
        assert np.array_equal(a["kspace_full"][()], b["kspace_full"][()])
        assert file_format(a) == CMRXRECON == file_format(b)
    with open(ours, "rb") as raw:
        assert raw.read(19) == b"MATLAB 7.3 MAT-file"


def test_full_sample_cine_items_maps_and_challenge_masks(full_2023, capsys):
    path, k = full_2023
    with pytest.raises(DataFormatError, match="gleam-data maps"):
        CmrxReconDataset(str(path), verbose=False)
    _maps(path)
    side = path.with_name("cine_sax.maps.h5")
    with h5py.File(side, "r") as s:
        assert s["maps"].shape == (SLICES, COILS, 1, KX, KY)
    _maps(path)                                                        # resumable: a current sidecar is kept
    assert "0 computed, 1 already done" in capsys.readouterr().out
    with h5py.File(side, "r+") as s:              # this file's attrs over maps of transposed (ky, kx): not current
        del s["maps"]
        s.create_dataset("maps", data=np.zeros((SLICES, COILS, 1, KY, KX), np.complex64))
    _maps(path)
    assert "1 computed, 0 already done" in capsys.readouterr().out
    with h5py.File(side, "r") as s:
        assert s["maps"].shape == (SLICES, COILS, 1, KX, KY)
    spec = {"type": "uniform", "accelerations": [4], "calib": 24}
    ds = open_dataset(str(path.parents[1]), mask=spec, fixed_masks=True, verbose=False)   # the TrainingSet folder
    assert isinstance(ds, CmrxReconDataset) and len(ds) == SLICES
    expected_mask = torch.from_numpy(_uniform_matlab(4, 24)[0].astype(np.float32))   # along ky, the same at every kx
    for z in (0, SLICES - 1):
        item = ds[z]
        assert item["meta"]["kind"] == "cine" and item["meta"]["slice"] == z
        assert item["kspace"].shape == (COILS, FRAMES, KX, KY)
        assert torch.equal(item["mask"].flatten(), expected_mask)
        # k-space: the file's slice z, coil c, frame t as MATLAB indexes it k(:, :, c, z, t) = (kx, ky)
        want = torch.from_numpy(k[:, :, :, z, :].transpose(2, 3, 0, 1)) * item["mask"] * item["meta"]["scale"]
        torch.testing.assert_close(item["kspace"], want.to(torch.complex64))
        # target: the ESPIRiT maps' coil combination of the fully sampled images (maps from the sidecar)
        with h5py.File(side, "r") as s:
            maps = s["maps"][z][:, 0]                                                   # (C, kx, ky)
        images = ifft2c_np(k[:, :, :, z, :].transpose(2, 3, 0, 1))                      # (C, T, kx, ky)
        target = (maps.conj()[:, None] * images).sum(0) * item["meta"]["scale"]
        np.testing.assert_allclose(item["target"][0].numpy(), target, rtol=1e-4, atol=1e-4)
        norms = np.sqrt((np.abs(maps) ** 2).sum(0))
        assert np.allclose(norms[norms > 0], 1, atol=1e-4) and (norms > 0).mean() > 0.25
    # what summary and inspect print
    assert data_main(["summary", "--in", str(path)]) == 0
    out = capsys.readouterr().out
    assert "CmrxReconDataset: 1 files, 3 cines" in out and f"({COILS}, {FRAMES}, {KX}, {KY})" in out
    assert data_main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "layout cmrxrecon" in out and f"kx={KX}, ky={KY}, coils={COILS}, slices={SLICES}, time={FRAMES}" in out


def test_2023_undersampled_files_use_their_mask_files(tmp_path):
    folder = tmp_path / "MultiCoil" / "Cine" / "ValidationSet" / "AccFactor08" / "P002"
    folder.mkdir(parents=True)
    mask = _uniform_matlab(8, 24)
    _matlab_save(folder / "cine_lax.mat", "kspace_sub08", _cine_matlab(1) * mask[:, :, None, None, None])
    _matlab_save(folder / "cine_lax_mask.mat", "mask08", mask)
    _maps(folder)
    ds = open_dataset(str(tmp_path / "MultiCoil"), verbose=False)    # the mask file is not taken for data
    assert len(ds.entries) == 1 and ds.entries[0].info["mask_source"].endswith("cine_lax_mask.mat")
    item = ds[1]
    assert "target" not in item and item["mask"].shape == (1, 1, 1, KY)
    assert torch.equal(item["mask"].flatten(), torch.from_numpy(mask[0].astype(np.float32)))
    assert item["meta"]["acceleration"] == pytest.approx(KY / mask[0].sum())
    (folder / "cine_lax_mask.mat").unlink()                            # without its mask file: the sampled lines
    ds = CmrxReconDataset(str(folder / "cine_lax.mat"), verbose=False)
    assert ds.entries[0].info["mask_source"].startswith("the sampled lines")
    assert torch.equal(ds[0]["mask"].flatten(), torch.from_numpy(mask[0].astype(np.float32)))


def test_2024_task_layouts_and_kt_masks(tmp_path):
    base = tmp_path / "MultiCoil" / "Cine" / "ValidationSet"
    data, masks = base / "UnderSample_Task2" / "P001", base / "Mask_Task2" / "P001"
    data.mkdir(parents=True)
    masks.mkdir(parents=True)
    rng = np.random.default_rng(0)
    kt = (rng.uniform(size=(KX, KY, FRAMES)) < 0.3).astype(np.float64)   # MATLAB (kx, ky, t), varying in all three
    kt[KX // 2 - 8:KX // 2 + 8, KY // 2 - 8:KY // 2 + 8] = 1             # ktRadial's central 16 x 16 region
    _matlab_save(data / "cine_sax_kus_ktRadial8.mat", "kus", _cine_matlab(2) * kt[:, :, None, None, :])
    write_cmrxrecon_mask(masks / "cine_sax_mask_ktRadial8.mat", {"mask": kt})
    _maps(data)
    ds = CmrxReconDataset(str(data), verbose=False)
    item = ds[0]
    assert item["mask"].shape == (1, FRAMES, KX, KY)
    torch.testing.assert_close(item["mask"][0], torch.from_numpy(kt.transpose(2, 0, 1).astype(np.float32)))
    # a 2D (kx, ky) mask file and the 2025 variable name 'kspace'
    uni = _uniform_matlab(4, 16)
    write_cmrxrecon_mask(tmp_path / "m.mat", {"mask": uni})
    assert torch.equal(read_mask_file(tmp_path / "m.mat").flatten(), torch.from_numpy(uni[0].astype(np.float32)))
    write_cmrxrecon(tmp_path / "cine_sax.mat", _cine_matlab(), key="kspace")
    _maps(tmp_path / "cine_sax.mat")
    assert not CmrxReconDataset(str(tmp_path / "cine_sax.mat"), verbose=False).entries[0].info["undersampled"]


def test_uniform_mask_is_the_challenge_pattern():
    for r, calib in ((4, 24), (8, 24), (10, 24), (4, 16)):
        m = UniformMask1D([r], calib)((FRAMES, KX, KY), seed="P001")
        assert m.shape == (1, 1, 1, KY)
        assert torch.equal(m.flatten(), torch.from_numpy(_uniform_matlab(r, calib)[0].astype(np.float32)))
    # ktUniform (2024): ktUniformSampling.m, step by step, for even frame counts (cine's 12)
    for r, frames in ((4, 6), (8, 12), (4, 12)):
        expected = _kt_uniform_matlab(KY, frames, r, 16)
        kt = UniformMask1D([r], 16, kt=True)((frames, KX, KY))
        assert kt.shape == (1, frames, 1, KY)
        assert torch.equal(kt[0, :, 0], torch.from_numpy(expected.astype(np.float32)))
    # odd frame counts (T1 mapping's 9, T2's 3): the script's floor(nt)/2 shifts its lattice by half a
    # frame and leaves the last frame half empty; the mask keeps the regular lattice (documented)
    kt = UniformMask1D([4], 16, kt=True)((9, KX, KY))[0, :, 0].numpy()
    challenge = _kt_uniform_matlab(KY, 9, 4, 16)
    assert not np.array_equal(kt, challenge) and challenge[-1].sum() < kt[-1].sum()
    assert (kt.sum(axis=1) == kt[0].sum()).all()                               # every frame alike
    with pytest.raises(ValueError, match="kt"):
        UniformMask1D([4], 16, kt=True)((KX, KY))
    picked = {float(UniformMask1D([4, 8, 10])((KX, 128), seed=s).sum()) for s in range(20)}
    assert len(picked) == 3                                                    # the seed picks the acceleration
    assert mask_from_spec({"type": "uniform", "accelerations": [4]}).to_spec()["calib"] == 24
    with pytest.raises(ValueError, match="accelerations"):
        UniformMask1D([2.5])
    with pytest.raises(ValueError, match="calib"):
        UniformMask1D([4], calib=40)((KX, KY))


def test_spec_option_selects_the_reader(full_2023):
    from gleam_core.train.datasets import build_dataset
    from gleam_core.train.spec import DataSource

    path, _ = full_2023
    _maps(path)
    src = DataSource(path=str(path), options={"format": "cmrxrecon"})
    ds = build_dataset(src, "cine", {"type": "uniform", "accelerations": [8]}, 0, train=False, key="data.val")
    assert isinstance(ds, CmrxReconDataset) and ds[0]["meta"]["kind"] == "cine"


def test_malformed_files_name_file_and_key(tmp_path, full_2023):
    bad = tmp_path / "bad"
    bad.mkdir()
    with h5py.File(bad / "real.mat", "w") as f:               # k-space not stored as MATLAB complex
        f.create_dataset("kspace_full", data=np.zeros((FRAMES, SLICES, COILS, KY, KX), np.float32))
    with pytest.raises(DataFormatError, match=r"real\.mat.*unknown layout"):
        CmrxReconDataset(str(bad / "real.mat"), verbose=False)
    _matlab_save(bad / "four.mat", "kspace_full", _cine_matlab()[..., 0])   # 4 dims: the time axis is missing
    with pytest.raises(DataFormatError, match=r"four\.mat: 'kspace_full' has shape \(3, 4, 28, 32\), expected 5 dims"):
        CmrxReconDataset(str(bad / "four.mat"), verbose=False)
    _matlab_save(bad / "single.mat", "kspace_single_full", _cine_matlab()[:, :, 0])
    with pytest.raises(DataFormatError, match=r"single\.mat: 'kspace_single_full' is single-coil"):
        CmrxReconDataset(str(bad / "single.mat"), verbose=False)
    # a mask file that does not fit its k-space
    folder = tmp_path / "AccFactor04" / "P001"
    folder.mkdir(parents=True)
    _matlab_save(folder / "cine_sax.mat", "kspace_sub04", _cine_matlab())
    _matlab_save(folder / "cine_sax_mask.mat", "mask04", np.ones((KX, KY + 2)))
    with pytest.raises(DataFormatError, match=r"cine_sax_mask\.mat: mask of shape .* does not fit 'kspace_sub04'"):
        CmrxReconDataset(str(folder / "cine_sax.mat"), verbose=False)
    # maps of another file's shape
    path, _ = full_2023
    h5py.File(path.with_name("cine_sax.maps.h5"), "w").close()
    with pytest.raises(DataFormatError, match="cine_sax.maps.h5"):
        CmrxReconDataset(str(path), verbose=False)


def test_train_eval_and_recon_on_cmrxrecon_files(full_2023, tmp_path, capsys):
    """A cine network trains on CMRxRecon files (chosen by the spec's options), gleam-eval
    scores them per file, gleam-recon writes all slices and frames (NIfTI (kx, ky, slice, time))."""
    import nibabel as nib

    from gleam_core.cli.eval import main as eval_main
    from gleam_core.cli.recon import main as recon_main
    from gleam_core.train.trainer import Trainer
    from train_cases import tiny_spec

    path, _ = full_2023
    _maps(path)
    source = f"{{path: {path}, options: {{format: cmrxrecon}}}}"
    spec = tiny_spec(tmp_path, "data.kind=cine", f"data.train={source}", f"data.val={source}", "strategy=e2e",
                     "masks={type: uniform, accelerations: [4], calib: 8}", "model.denoiser.conv=2+1d", iterations=1)
    Trainer(spec).run()
    run = str(tmp_path / "run")
    assert eval_main(["--run", run, "--data", str(path), "--out", str(tmp_path / "e.csv")]) == 0
    assert "cine_sax.mat" in capsys.readouterr().out
    with pytest.warns(UserWarning, match="no ISMRMRD header"):     # CMRxRecon files carry no geometry
        assert recon_main(["--checkpoint", run, "--in", str(path), "--out", str(tmp_path / "o"), "--format", "nifti",
                           "--no-figures"]) == 0
    assert nib.load(tmp_path / "o" / "cine_sax.nii.gz").shape == (KX, KY, SLICES, FRAMES)
