"""Synthetic data (content, determinism, motion, noise), the gleam-data CLI, and the ISMRMRD
converter on files written with the ismrmrd package itself."""

import h5py
import pytest
import torch

import gleam_core.data as D
from gleam_core.cli.data import main
from gleam_core.data.synthetic import SynthConfig, synth_volume
from gleam_core.ops import ifftnc


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


def _synth(out, *extra):
    return main(["synth", "--kind", "knee2d", "--out", str(out), "--coils", "2", "--slices", "2", "--quiet", *extra])


def test_cli_synth_rerun_with_other_parameters_regenerates(tmp_path, capsys):
    out = tmp_path / "k"
    assert _synth(out, "--n", "1", "--shape", "31", "33") == 0
    assert "1 written, 0 kept" in capsys.readouterr().out
    first = out / "knee2d_s0_00000.h5"
    with h5py.File(first) as f:
        assert f.attrs["synth_kind"] == "knee2d" and tuple(f.attrs["synth_shape"]) == (31, 33)
        assert f.attrs["synth_coils"] == 2 and f.attrs["synth_slices"] == 2 and f.attrs["synth_seed"] == 0
    assert _synth(out, "--n", "2", "--shape", "16", "16") == 0
    text = capsys.readouterr().out
    assert "2 written (1 replaced a file made with other parameters), 0 kept" in text
    assert "replaced knee2d_s0_00000.h5" in text and "shape (31, 33), not (16, 16)" in text
    files = sorted(out.glob("*.h5"))
    assert [f.name for f in files] == ["knee2d_s0_00000.h5", "knee2d_s0_00001.h5"]
    for path in files:                                                  # both hold the new parameters' data
        with h5py.File(path) as f:
            assert f["kspace"].shape == (2, 2, 16, 16) and tuple(f.attrs["synth_shape"]) == (16, 16)
    ds = D.FastMRIDataset(out, verbose=False)
    want, _ = synth_volume(SynthConfig("knee2d", (16, 16), 2, 2), 0, 0)
    assert torch.allclose(ds[0]["kspace"] / ds[0]["meta"]["scale"], want[0], atol=1e-5 * float(want.abs().max()))
    mtimes = [f.stat().st_mtime_ns for f in files]
    assert _synth(out, "--n", "2", "--shape", "16", "16") == 0              # same parameters: kept
    assert "0 written, 2 kept" in capsys.readouterr().out
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert _synth(out, "--n", "1", "--shape", "16", "16", "--noise", "0.1") == 0
    text = capsys.readouterr()
    assert "1 written (1 replaced" in text.out and "noise 0.02, not 0.1" in text.out
    assert "knee2d_s0_00001.h5" in text.err and "not from this run" in text.err   # the other file is named
    with h5py.File(first, "a") as f:                                    # a file from before the attrs existed
        del f.attrs["synth_shape"]
    assert _synth(out, "--n", "1", "--shape", "16", "16", "--noise", "0.1") == 0
    assert "shape not recorded" in capsys.readouterr().out
    assert not [p for p in out.iterdir() if p.name.startswith(".")]     # no temporary files left


@pytest.mark.parametrize("n", ["0", "-1"])
def test_cli_synth_n_must_be_positive(tmp_path, capsys, n):
    with pytest.raises(SystemExit) as info:
        _synth(tmp_path / "k", "--n", n)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "--n" in err and "must be >= 1" in err
    assert not (tmp_path / "k").exists()
    with pytest.raises(ValueError, match=">= 1"):
        D.write_synthetic(tmp_path / "k", SynthConfig("knee2d", (16, 16), 2, 1), 0, 0, progress=False)


def test_cli_synth_out_is_a_file(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        assert _synth(out, "--n", "1") == 1
        err = capsys.readouterr().err
        assert f"{tmp_path / 'afile'}" in err and "is a file, not a folder" in err and "Errno" not in err
    with pytest.raises(ValueError, match="is a file, not a folder"):
        D.write_synthetic(tmp_path / "afile", SynthConfig("knee2d", (16, 16), 2, 1), 1, 0, progress=False)


def test_cli_summary_slabs(tmp_path, capsys):
    main(["synth", "--kind", "knee3d", "--n", "1", "--out", str(tmp_path / "v"), "--shape", "8", "16", "16",
          "--coils", "2", "--quiet"])
    capsys.readouterr()
    assert main(["summary", "--in", str(tmp_path / "v"), "--mode", "slabs", "--slab", "4"]) == 0
    assert "1 files, 2 readout slabs of 4" in capsys.readouterr().out
    for args, words in [(["--slab", "4"], ["--slab", "--mode slabs"]),
                        (["--mode", "volume", "--slab", "4"], ["--slab", "--mode slabs"]),
                        (["--mode", "slabs"], ["--mode slabs", "--slab"]),
                        (["--mode", "slabs", "--slab", "0"], ["--slab", ">= 1"])]:
        with pytest.raises(SystemExit) as info:
            main(["summary", "--in", str(tmp_path / "v"), *args])
        assert info.value.code == 2
        err = capsys.readouterr().err.splitlines()[-1]
        assert all(w in err for w in words), err
    _synth(tmp_path / "k", "--n", "1", "--shape", "16", "16")
    assert main(["summary", "--in", str(tmp_path / "k"), "--mode", "slices"]) == 1     # not vol3d: clear error
    assert "--mode applies to vol3d data only" in capsys.readouterr().err


# ---- ISMRMRD --------------------------------------------------------------------------------
