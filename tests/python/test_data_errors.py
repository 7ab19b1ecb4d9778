"""Bad input: missing keys, wrong shapes and dtypes, truncated and non-HDF5 files, empty
directories, skipped-file reports, atomic writes and untouched inputs."""

import hashlib

import h5py
import numpy as np
import pytest

import gleam_core.data as D
from gleam_core.atomic import atomic_h5
from gleam_core.data import sidecar
from data_files import coil_data, write_fastmri_by_hand

RANDOM4 = {"type": "random", "center_fractions": [0.08], "accelerations": [4]}


@pytest.fixture
def good(tmp_path):
    """A valid fastMRI file with in-file maps, in its own directory."""
    d = tmp_path / "data"
    d.mkdir()
    k, m = coil_data(2, 2, 32, 24)
    write_fastmri_by_hand(d / "good.h5", k, first=0, end=24, maps=m[:, :, None])
    return d / "good.h5"


def _rewrite(path, drop=(), replace=None):
    """Copies ``path`` without the keys in ``drop`` and with ``replace`` {key: array}."""
    replace = replace or {}
    with h5py.File(path, "r") as src, h5py.File(path.with_name("tmp.h5"), "w") as dst:
        for key in src:
            if key not in drop and key not in replace:
                src.copy(key, dst)
        for key, value in replace.items():
            dst.create_dataset(key, data=value)
        dst.attrs.update(dict(src.attrs))
    path.with_name("tmp.h5").replace(path)


@pytest.mark.parametrize("edit, match", [
    (dict(drop=("kspace",)), "unknown layout"),
    (dict(replace={"kspace": np.zeros((2, 2, 32, 24), np.float32)}), r"'kspace' has dtype float32, expected complex"),
    (dict(replace={"maps": np.zeros((2, 2, 1, 32, 20), np.complex64)}), r"'maps' has shape \(2, 2, 1, 32, 20\)"),
    (dict(replace={"mask": np.ones(23, np.float32)}), r"'mask' has shape \(23,\)"),
    (dict(replace={"ismrmrd_header": "<ismrmrdHeader><oops"}), "malformed XML"),
    (dict(drop=("maps",)), "gleam-data maps"),
])
def test_bad_fastmri_file_names_file_and_key(good, edit, match):
    _rewrite(good, **edit)
    with pytest.raises(D.DataFormatError, match=match) as info:
        D.FastMRIDataset(good, mask=RANDOM4, verbose=False)
    assert "good.h5" in str(info.value)


def test_truncated_and_non_hdf5_files(good, tmp_path):
    data = good.read_bytes()
    trunc = good.with_name("trunc.h5")
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(D.DataFormatError, match="trunc.h5"):
        D.FastMRIDataset(trunc, verbose=False)
    text = good.with_name("text.h5")
    text.write_text("not hdf5 at all")
    with pytest.raises(D.DataFormatError, match="text.h5: not a readable HDF5 file"):
        D.FastMRIDataset(text, verbose=False)
    # in a directory scan both are skipped, reported with their reasons, and the good file loads
    ds = D.FastMRIDataset(good.parent, mask=RANDOM4, verbose=False)
    assert len(ds) == 2
    reasons = {p.name: why for p, why in ds.skipped}
    assert set(reasons) == {"trunc.h5", "text.h5"}
    assert "not a readable HDF5 file" in reasons["text.h5"]
    assert "trunc.h5" in ds.summary() and "text.h5" in ds.summary()
    with pytest.raises(D.DataFormatError):
        D.FastMRIDataset(good.parent, on_error="raise", verbose=False)


def test_truncated_inside_data_fails_at_scan(tmp_path):
    """A file whose HDF5 metadata is intact but whose chunk data is cut off."""
    path = tmp_path / "cut.h5"
    D.write_volume(path, np.ones((2, 4, 8, 8), np.complex64), np.ones((2, 1, 4, 8, 8), np.complex64), hybrid=False)
    with h5py.File(path, "r") as f:
        offset = f["kspace"].id.get_chunk_info(f["kspace"].id.get_num_chunks() - 1).byte_offset
    with open(path, "r+b") as fh:
        fh.truncate(offset + 8)
    with pytest.raises(D.DataFormatError, match="cut.h5"):
        D.Volume3DDataset(path, verbose=False)


def test_empty_and_missing_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no \.h5 or \.mat data files"):
        D.FastMRIDataset(tmp_path / "empty", verbose=False)
    with pytest.raises(ValueError, match="does not exist"):
        D.FastMRIDataset(tmp_path / "nope", verbose=False)
    (tmp_path / "list.txt").write_text("a.h5\n")
    with pytest.raises(ValueError, match="list.txt:1: listed file 'a.h5' does not exist"):
        D.FastMRIDataset(tmp_path / "list.txt", verbose=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.h5").write_text("junk")
    with pytest.raises(ValueError, match="no usable files.*x.h5: .*not a readable HDF5 file"):
        D.FastMRIDataset(tmp_path / "bad", verbose=False)


def test_wrong_format_for_reader(tmp_path):
    D.write_synthetic(tmp_path, D.SynthConfig("cine", (4, 16, 16), 2), 1, 0, progress=False)
    with pytest.raises(D.DataFormatError, match="layout 'cine', expected 'fastmri'"):
        D.FastMRIDataset(next(tmp_path.glob("*.h5")), verbose=False)
    with pytest.raises(D.DataFormatError, match="expected 'vol3d'"):
        D.Volume3DDataset(next(tmp_path.glob("*.h5")), verbose=False)


def test_unreachable_acceleration_names_the_parameter(tmp_path):
    D.write_synthetic(tmp_path, D.SynthConfig("knee3d", (8, 16, 16), 2), 1, 0, progress=False)
    with pytest.raises(ValueError, match="acceleration 40.0 cannot be reached"):   # when the dataset is built
        D.Volume3DDataset(tmp_path, mask={"type": "poisson", "acceleration": 40, "calib": 8}, verbose=False)
    with pytest.raises(ValueError, match="acceleration 40.0 cannot be reached"):
        D.SyntheticDataset("knee3d", 2, shape=(8, 16, 16), mask={"type": "poisson", "acceleration": 40, "calib": 8})
    with pytest.raises(ValueError, match="mask spec"):
        D.Volume3DDataset(tmp_path, mask={"kind": "poisson"}, verbose=False)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_h5(target) as f:
            f.create_dataset("x", data=np.ones(3))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="do not form"):
        D.write_volume(target, np.ones((2, 4, 8, 8), np.complex64), np.ones((2, 1, 4, 8, 7), np.complex64))
    assert list(tmp_path.iterdir()) == []


def test_maps_command_is_resumable_and_never_touches_inputs(tmp_path, monkeypatch):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        write_fastmri_by_hand(d / f"f{i}.h5", coil_data(2, 2, 32, 24, seed=i)[0], first=0, end=24)
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir()}
    real = sidecar.espirit_maps
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # the run dies while computing the second file
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(sidecar, "espirit_maps", flaky)
    report = sidecar.compute_maps(d, progress=False, calib_width=12, batch=2)
    assert [p.name for p in report.computed] == ["f0.h5", "f2.h5"] and report.failed[0][0].name == "f1.h5"
    assert sorted(p.name for p in d.iterdir()) == ["f0.h5", "f0.maps.h5", "f1.h5", "f2.h5", "f2.maps.h5"]
    monkeypatch.setattr(sidecar, "espirit_maps", real)
    report = sidecar.compute_maps(d, progress=False, calib_width=12)
    assert [p.name for p in report.computed] == ["f1.h5"] and len(report.kept) == 2
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir() if "maps" not in p.name} == digest
    assert len(D.FastMRIDataset(d, verbose=False)) == 6
    report = sidecar.compute_maps(d, progress=False, calib_width=10)  # other parameters: stale sidecars
    assert len(report.computed) == 3 and not report.kept


def test_maps_cli_exits_1_when_any_file_failed(tmp_path, capsys):
    from gleam_core.cli.data import main

    d = tmp_path / "in"
    d.mkdir()
    for i in range(2):
        write_fastmri_by_hand(d / f"f{i}.h5", coil_data(1, 2, 32, 24, seed=i)[0], first=0, end=24)
    (d / "junk.h5").write_text("not hdf5")
    assert main(["maps", "--in", str(d), "--calib", "12", "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "2 computed, 0 already done, 1 failed" in out
    assert "failed" in err and "junk.h5" in err and "not a readable HDF5 file" in err
    assert main(["maps", "--in", str(d), "--calib", "12", "--quiet"]) == 1     # the rerun still reports it
    assert "0 computed, 2 already done, 1 failed" in capsys.readouterr().out
    (d / "junk.h5").unlink()
    assert main(["maps", "--in", str(d), "--calib", "12", "--quiet"]) == 0
    (tmp_path / "afile").write_text("x")
    assert main(["maps", "--in", str(d), "--out", str(tmp_path / "afile"), "--quiet"]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
