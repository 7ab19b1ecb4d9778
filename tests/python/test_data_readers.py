"""Readers: a fastMRI file built by hand, synthetic round trips through every format, the item
contract (undersampling, target, scale), masks per epoch, collate and DataLoader workers."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import gleam_core.data as D
from gleam_core.data.sidecar import compute_maps
from data_files import coil_data, ifft2c_np, to_np, write_fastmri_by_hand

RANDOM4 = {"type": "random", "center_fractions": [0.08], "accelerations": [4]}
H, W, C, N = 48, 40, 4, 3
FIRST, END = 2, 36   # sampled columns of the hand-built file


@pytest.fixture(scope="module")
def fastmri_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fastmri")
    kspace, maps = coil_data(N, C, H, W)
    write_fastmri_by_hand(d / "file1000.h5", kspace, first=FIRST, end=END)
    write_fastmri_by_hand(d / "file1001.h5", coil_data(N, C, H, W, seed=5)[0], first=FIRST, end=END)
    return d


def test_an_item_with_nan_kspace_is_refused_naming_file_and_item(tmp_path):
    kspace, _ = coil_data(2, C, H, W, seed=7)
    kspace[1, 2, 5, FIRST + 3] = np.nan
    write_fastmri_by_hand(tmp_path / "file2000.h5", kspace, first=FIRST, end=END)
    compute_maps(tmp_path, tmp_path / "maps", progress=False, calib_width=16)
    ds = D.FastMRIDataset(tmp_path / "file2000.h5", mask=RANDOM4, maps_dir=tmp_path / "maps", verbose=False)
    assert torch.isfinite(ds[0]["kspace"]).all()
    with pytest.raises(ValueError, match=r"file2000.h5: item 1 \(slices\) has 1 NaN or infinite values in 'kspace'"):
        ds[1]


def test_fastmri_needs_maps_then_reads_items(fastmri_dir, tmp_path):
    with pytest.raises(ValueError, match="gleam-data maps"):
        D.FastMRIDataset(fastmri_dir / "file1000.h5", mask=RANDOM4, verbose=False)
    maps_dir = tmp_path / "maps"
    report = compute_maps(fastmri_dir, maps_dir, progress=False, calib_width=16)
    assert len(report.computed) == 2 and not report.failed
    ds = D.FastMRIDataset(fastmri_dir, mask=RANDOM4, fixed_masks=True, maps_dir=maps_dir, verbose=False)
    assert len(ds) == 2 * N
    import h5py
    with h5py.File(fastmri_dir / "file1000.h5") as f, h5py.File(maps_dir / "file1000.maps.h5") as s:
        k_file, maps_file = f["kspace"][1], s["maps"][1]
    item = ds[1]
    assert item["kspace"].shape == (C, H, W) and item["kspace"].dtype == torch.complex64
    assert item["maps"].shape == (C, 1, H, W) and item["mask"].shape == (1, 1, W)
    assert item["target"].shape == (1, H, W)
    meta = item["meta"]
    assert (meta["file"].endswith("file1000.h5"), meta["slice"], meta["kind"]) == (True, 1, "2d")
    assert meta["acquisition"] == "CORPD_FBK" and meta["recon_size"] == (24, 24)
    assert meta["padding"] == (FIRST, END)
    mask = to_np(item["mask"])[0, 0]
    assert not mask[:FIRST].any() and not mask[END:].any() and mask[FIRST:END].any()
    scale = meta["scale"]
    # undersampled k-space = file k-space * mask * scale
    assert np.allclose(to_np(item["kspace"]), k_file * mask * scale, atol=1e-6 * np.abs(k_file).max() * scale)
    # target = sum_c conj(maps_c) F^H k_c, checked with numpy's FFT
    target = (maps_file[:, 0].conj() * ifft2c_np(k_file)).sum(0) * scale
    assert np.allclose(to_np(item["target"][0]), target, atol=1e-5 * np.abs(target).max())
    # scale: the zero-filled image has a robust max (99th percentile) of 1
    zf = (maps_file[:, 0].conj() * ifft2c_np(k_file * mask)).sum(0) * scale
    assert abs(np.quantile(np.abs(zf), 0.99) - 1) < 0.02


def test_fixed_and_training_masks(fastmri_dir, tmp_path):
    compute_maps(fastmri_dir, tmp_path, progress=False, calib_width=16)
    fixed = D.FastMRIDataset(fastmri_dir, mask=RANDOM4, fixed_masks=True, maps_dir=tmp_path, verbose=False)
    train = D.FastMRIDataset(fastmri_dir, mask=RANDOM4, maps_dir=tmp_path, seed=3, verbose=False)
    m = [fixed[i]["mask"] for i in range(N)]
    assert all(torch.equal(m[0], x) for x in m)              # one mask per volume (seeded by its name)
    assert not torch.equal(m[0], fixed[N]["mask"])            # another file, another mask
    fixed.set_epoch(5)
    assert torch.equal(fixed[0]["mask"], m[0])                # and the same every epoch
    e0 = [train[i]["mask"] for i in range(N)]
    train.set_epoch(1)
    e1 = [train[i]["mask"] for i in range(N)]
    assert not torch.equal(e0[0], e0[1]) and not torch.equal(e0[0], e1[0])
    train.set_epoch(0)
    assert torch.equal(train[0]["mask"], e0[0])               # reproducible


def test_fastmri_test_file_with_mask(tmp_path):
    kspace, maps = coil_data(2, C, H, W)
    mask = np.zeros(W, dtype=np.float32)
    mask[::3] = 1
    mask[W // 2 - 6:W // 2 + 6] = 1
    write_fastmri_by_hand(tmp_path / "test1.h5", kspace, first=0, end=W, mask=mask, maps=maps[:, :, None])
    ds = D.FastMRIDataset(tmp_path / "test1.h5", mask=RANDOM4, verbose=False)   # the file's mask wins
    item = ds[0]
    assert "target" not in item
    assert np.array_equal(to_np(item["mask"])[0, 0], mask)
    assert np.allclose(to_np(item["kspace"]), kspace[0] * mask * item["meta"]["scale"], atol=1e-5)
    with pytest.raises(ValueError, match="different keys"):
        synthetic = D.SyntheticDataset("knee2d", 1, shape=(H, W), coils=C, slices=1)[0]
        D.collate([item, synthetic])


def test_synthetic_fastmri_round_trip(tmp_path):
    kw = dict(shape=(48, 40), coils=4, slices=3)
    D.write_synthetic(tmp_path, D.SynthConfig("knee2d", **kw), 2, seed=7, progress=False)
    files = D.FastMRIDataset(tmp_path, mask=RANDOM4, fixed_masks=True, verbose=False)
    live = D.SyntheticDataset("knee2d", 6, seed=7, mask=RANDOM4, fixed_masks=True, **kw)
    assert len(files) == len(live) == 6
    for i in (0, 4):
        a, b = files[i], live[i]
        for key in ("kspace", "maps", "mask", "target"):
            assert torch.allclose(a[key], b[key], atol=1e-6), key
        assert a["meta"]["slice"] == b["meta"]["slice"] and a["meta"]["scale"] == pytest.approx(b["meta"]["scale"])


VOLUME = dict(shape=(12, 24, 20), coils=4)
POISSON = {"type": "poisson", "acceleration": 3, "calib": 6}


def write_volumes(root) -> None:
    """One synthetic knee3d volume (seed 2) twice: with hybrid data in ``root/hyb``, without in
    ``root/plain``."""
    cfg = D.SynthConfig("knee3d", **VOLUME)
    D.write_synthetic(root / "hyb", cfg, 1, seed=2, progress=False)
    k, m = D.synthetic.synth_volume(cfg, 2, 0)
    D.write_volume(root / "plain" / D.synthetic.synthetic_name("knee3d", 2, 0), k, m, hybrid=False)


def test_volume_round_trip_and_slices(tmp_path):
    kw, poisson = VOLUME, POISSON
    write_volumes(tmp_path)
    vol = D.Volume3DDataset(tmp_path / "hyb", mask=poisson, fixed_masks=True, verbose=False)
    live = D.SyntheticDataset("knee3d", 1, seed=2, mask=poisson, fixed_masks=True, **kw)
    a, b = vol[0], live[0]
    assert a["kspace"].shape == (4, 12, 24, 20) and a["mask"].shape == (1, 1, 24, 20)
    assert a["meta"]["kind"] == "3d" and a["meta"]["fft_ndim"] == 3
    for key in ("kspace", "maps", "mask", "target"):
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    slices = D.Volume3DDataset(tmp_path / "hyb", mode="slices", mask=poisson, fixed_masks=True, verbose=False)
    plain = D.Volume3DDataset(tmp_path / "plain", mode="slices", mask=poisson, fixed_masks=True, verbose=False)
    live_s = D.SyntheticDataset("knee3d", 12, seed=2, mode="slices", mask=poisson, fixed_masks=True, **kw)
    assert len(slices) == 12
    s5 = slices[5]
    assert s5["kspace"].shape == (4, 24, 20) and s5["mask"].shape == (1, 24, 20) and s5["meta"]["kind"] == "2d"
    assert torch.equal(s5["mask"][0], a["mask"][0, 0])        # the volume's one acquisition mask
    for key in ("kspace", "maps", "target"):
        assert torch.allclose(s5[key], plain[5][key], atol=1e-5), key
        assert torch.allclose(s5[key], live_s[5][key], atol=1e-5), key
    # the slice target is the volume target's readout position 5 (same image, own scale)
    assert torch.allclose(s5["target"] / s5["meta"]["scale"], a["target"][:, 5] / a["meta"]["scale"], atol=1e-4)


def test_cine_round_trip(tmp_path):
    kw = dict(shape=(6, 32, 32), coils=4)
    D.write_synthetic(tmp_path, D.SynthConfig("cine", **kw), 1, seed=4, progress=False)
    kt = {"type": "kt", "acceleration": 4, "center_lines": 4}
    a = D.CineDataset(tmp_path, mask=kt, fixed_masks=True, verbose=False)[0]
    b = D.SyntheticDataset("cine", 1, seed=4, mask=kt, fixed_masks=True, **kw)[0]
    assert a["kspace"].shape == (4, 6, 32, 32) and a["maps"].shape == (4, 1, 1, 32, 32)
    assert a["mask"].shape == (1, 6, 1, 32) and a["target"].shape == (1, 6, 32, 32)
    for key in ("kspace", "maps", "mask", "target"):
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_open_dataset_dispatch(tmp_path):
    D.write_synthetic(tmp_path / "c", D.SynthConfig("cine", (4, 16, 16), 2), 1, 0, progress=False)
    D.write_synthetic(tmp_path / "v", D.SynthConfig("knee3d", (8, 16, 16), 2), 1, 0, progress=False)
    assert isinstance(D.open_dataset(tmp_path / "c", verbose=False), D.CineDataset)
    assert isinstance(D.open_dataset(tmp_path / "v", mode="slices", verbose=False), D.Volume3DDataset)
    assert isinstance(D.open_dataset("synthetic:brain2d", n=2), D.SyntheticDataset)
    both = D.Volume3DDataset([tmp_path / "v", str(tmp_path / "*" / "*.h5")], on_error="skip", verbose=False)
    assert len(both) == 1 and len(both.skipped) == 1                  # read once; the cine file is not vol3d
    with pytest.raises(ValueError, match="matches no files"):
        D.open_dataset(str(tmp_path / "*.nothing"))
    with pytest.raises(ValueError, match="format"):
        D.open_dataset(tmp_path / "c", format="nifti")


def test_collate_and_dataloader_workers(tmp_path):
    kw = dict(shape=(32, 24), coils=2, slices=2)
    D.write_synthetic(tmp_path, D.SynthConfig("brain2d", **kw), 2, seed=1, progress=False)
    ds = D.FastMRIDataset(tmp_path, mask=RANDOM4, fixed_masks=True, verbose=False)
    batch = D.collate([ds[0], ds[3]])
    assert batch["kspace"].shape == (2, 2, 32, 24) and batch["maps"].shape == (2, 2, 1, 32, 24)
    assert batch["mask"].shape == (2, 1, 1, 24) and batch["target"].shape == (2, 1, 32, 24)
    assert [m["slice"] for m in batch["meta"]] == [0, 1]
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=D.collate)
    batches = list(loader)
    assert len(batches) == 2
    assert torch.equal(batches[1]["kspace"], D.collate([ds[2], ds[3]])["kspace"])
    other = D.SyntheticDataset("brain2d", 1, shape=(32, 32), coils=2, slices=1, mask=RANDOM4)[0]
    with pytest.raises(ValueError, match="shapes differ"):
        D.collate([ds[0], other])
    with pytest.raises(ValueError, match="empty"):
        D.collate([])


def test_summary_lists_files_items_shapes(tmp_path, capsys):
    D.write_synthetic(tmp_path, D.SynthConfig("knee2d", (32, 24), 2, 2), 2, 0, progress=False)
    (tmp_path / "notes.txt").write_text("hello")
    D.FastMRIDataset(tmp_path, mask=RANDOM4)
    err = capsys.readouterr().err
    assert "2 files, 4 slices" in err and "(2, 32, 24)" in err and "2 coils" in err
    assert "skipped" in err and "notes.txt" in err and "not an .h5 or .mat file" in err


def test_volume_slabs_are_exact_3d_subproblems(tmp_path):
    """mode="slabs": each readout slab is the volume's sub-problem: same (ky, kz) mask, maps of
    the slab, and a target equal to the volume target's rows (up to the item scale)."""
    poisson = POISSON
    write_volumes(tmp_path)
    vol = D.Volume3DDataset(tmp_path / "hyb", mask=poisson, fixed_masks=True, verbose=False)[0]
    slabs = D.Volume3DDataset(tmp_path / "hyb", mode="slabs", slab=5, mask=poisson, fixed_masks=True, verbose=False)
    plain = D.Volume3DDataset(tmp_path / "plain", mode="slabs", slab=5, mask=poisson, fixed_masks=True, verbose=False)
    assert len(slabs) == 2                                      # 12 // 5, the last 2 positions dropped
    s1 = slabs[1]
    assert s1["kspace"].shape == (4, 5, 24, 20) and s1["maps"].shape == (4, 1, 5, 24, 20)
    assert s1["meta"]["kind"] == "3d" and s1["meta"]["slice"] == 1
    assert torch.equal(s1["mask"], vol["mask"])                # the volume's one acquisition mask
    torch.testing.assert_close(s1["target"] / s1["meta"]["scale"], vol["target"][:, 5:10] / vol["meta"]["scale"],
                               atol=1e-4, rtol=1e-4)
    for key in ("kspace", "maps", "target"):
        torch.testing.assert_close(s1[key], plain[1][key], atol=1e-5, rtol=1e-5)
    # measured data consistent with the slab's own SENSE model: y = mask * F(maps * target)
    from gleam_core.ops import sense_forward
    y = sense_forward(s1["target"][None], s1["maps"][None], s1["mask"][None], fft_ndim=3)[0]
    assert float((y - s1["kspace"]).norm() / s1["kspace"].norm()) < 0.05   # the residual is noise outside the maps
    with pytest.raises(ValueError, match="slab"):
        D.Volume3DDataset(tmp_path / "hyb", mode="slabs", verbose=False)
    with pytest.raises(ValueError, match="shorter than slab=20"):
        D.Volume3DDataset(tmp_path / "hyb", mode="slabs", slab=20, on_error="raise", verbose=False)
