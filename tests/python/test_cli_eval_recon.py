"""gleam-eval and gleam-recon on a tiny trained run: per-volume metrics equal the metrics of the
network's own reconstruction of each file, and reconstructions land in fastMRI's submission
layout (``reconstruction``) with figures."""

from __future__ import annotations

import csv

import h5py
import numpy as np
import pytest
import torch

from gleam_core import metrics
from gleam_core.cli.eval import main as eval_main
from gleam_core.cli.recon import main as recon_main
from gleam_core.data import FastMRIDataset, SynthConfig, collate, write_synthetic
from gleam_core.train.checkpoints import latest_checkpoint, load_model
from gleam_core.train.evaluation import batch_problem
from gleam_core.train.trainer import Trainer
from train_cases import tiny_spec

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    torch.set_num_threads(1)
    Trainer(tiny_spec(root, "strategy=gleam", iterations=6)).run()
    files = write_synthetic(root / "data", SynthConfig("knee2d", (32, 32), coils=4, slices=3), n=2, seed=5,
                            progress=False)
    return root, files


def own_reconstruction(run, path):
    """The run's network applied here to all slices of one file (with the run's fixed masks):
    reconstruction, problem, target and the slices' scales (S, 1, 1, 1)."""
    model, state = load_model(run)
    ds = FastMRIDataset(str(path), mask=state["spec"]["masks"], fixed_masks=True, verbose=False)
    items = [ds[i] for i in range(len(ds))]
    problem, target = batch_problem(collate(items), "2d", torch.device("cpu"))
    with torch.no_grad():
        recon = model(problem)
    return recon, problem, target, torch.tensor([it["meta"]["scale"] for it in items]).reshape(-1, 1, 1, 1)


def own_volume_psnr(run, path) -> tuple[float, float]:
    """PSNR of the network's and the zero-filled reconstruction of one file, computed here."""
    recon, problem, target, scale = own_reconstruction(run, path)
    recon = recon / scale
    target, zf = target / scale, problem.ahy / scale
    return float(metrics.psnr(recon[None], target[None])), float(metrics.psnr(zf[None], target[None]))


def test_eval_per_volume_and_mean(trained, tmp_path, capsys):
    root, files = trained
    out = tmp_path / "eval.csv"
    assert eval_main(["--run", str(root / "run"), "--data", str(root / "data"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "PSNR zf" in printed and "mean" in printed
    rows = list(csv.DictReader(out.open()))
    assert [r["volume"] for r in rows] == [f.name for f in files] + ["mean"]
    assert [int(r["items"]) for r in rows] == [3, 3, 6]
    for row, path in zip(rows, files):
        psnr, psnr_zf = own_volume_psnr(root / "run", path)
        assert float(row["psnr"]) == pytest.approx(psnr, abs=1e-4)
        assert float(row["psnr_zf"]) == pytest.approx(psnr_zf, abs=1e-4)
    for k in ("psnr", "ssim", "nrmse_zf"):
        assert float(rows[-1][k]) == pytest.approx((float(rows[0][k]) + float(rows[1][k])) / 2, rel=1e-5)


def test_eval_checkpoint_defaults_to_validation_data(trained, capsys):
    root, _ = trained
    ckpt = latest_checkpoint(root / "run")
    assert eval_main(["--checkpoint", str(ckpt), "--limit", "1"]) == 0
    assert "knee2d_s1_00000.h5" in capsys.readouterr().out  # the validation set's seed is spec seed + 1
    assert (root / "run" / "eval.csv").exists()


def test_recon_writes_submission_layout(trained, tmp_path, capsys):
    root, files = trained
    out = tmp_path / "recons"
    assert recon_main(["--checkpoint", str(root / "run"), "--in", str(root / "data"), "--out", str(out)]) == 0
    recon, _, _, scale = own_reconstruction(root / "run", files[0])
    expected = (recon / scale).abs()[:, 0]
    with h5py.File(out / files[0].name) as f:
        rec = torch.from_numpy(f["reconstruction"][()])
    assert rec.dtype == torch.float32 and rec.shape == (3, 32, 32)
    torch.testing.assert_close(rec, expected, rtol=1e-4, atol=1e-5)
    assert (out / "figures" / f"{files[0].stem}.png").stat().st_size > 0
    assert str(out / files[1].name) in capsys.readouterr().out


def test_cli_errors(trained, tmp_path, capsys):
    root, _ = trained
    assert recon_main(["--checkpoint", str(root / "run"), "--in", str(tmp_path / "none"), "--out",
                       str(tmp_path / "o")]) == 2
    assert "'--in'" in capsys.readouterr().err
    assert eval_main(["--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert eval_main(["--run", str(tmp_path)]) == 2
    assert "has no checkpoints" in capsys.readouterr().err


def test_files_that_are_not_checkpoints_and_bad_counts(trained, tmp_path, capsys):
    root, _ = trained
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint\n")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(latest_checkpoint(root / "run").read_bytes()[:5000])
    for path in (junk, root / "run" / "spec.yaml", truncated):
        assert eval_main(["--checkpoint", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{str(path)!r} is not a GLEAM checkpoint" in err and "Traceback" not in err
    assert eval_main(["--checkpoint", str(root / "run" / "checkpoints"), "--limit", "1"]) == 0  # the folder itself
    capsys.readouterr()
    for option in ("--limit", "--batch-size"):
        with pytest.raises(SystemExit) as exit_info:
            eval_main(["--run", str(root / "run"), option, "0"])
        assert exit_info.value.code == 2
        assert f"argument {option}: must be >= 1, got 0" in capsys.readouterr().err


def test_recon_refuses_to_overwrite_inputs(trained, capsys):
    root, files = trained
    before = files[0].read_bytes()
    assert recon_main(["--checkpoint", str(root / "run"), "--in", str(root / "data"), "--out",
                       str(root / "data"), "--no-figures"]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert files[0].read_bytes() == before


def test_masks_option_errors_name_the_option(trained, tmp_path, capsys):
    root, _ = trained
    for bad in ("{type: random, accelerations: [4", "{type: nonsense}", "[4]"):
        assert eval_main(["--run", str(root / "run"), "--masks", bad, "--out", str(tmp_path / "e.csv")]) == 2
        assert "'--masks'" in capsys.readouterr().err


def test_eval_refuses_files_without_target_but_recon_reads_them(trained, tmp_path, capsys):
    """A fastMRI test file (acquired undersampled, in-file mask, no target) cannot be scored;
    gleam-eval says which file, gleam-recon reconstructs it with its own mask."""
    import numpy as np

    from data_files import coil_data, write_fastmri_by_hand

    root, _ = trained
    kspace, maps = coil_data(2, 4, 32, 32, seed=3)
    mask = np.zeros(32, dtype=np.float32)
    mask[::4] = 1
    mask[14:18] = 1
    write_fastmri_by_hand(tmp_path / "test_file.h5", kspace, first=0, end=32, mask=mask, maps=maps[:, :, None])
    assert eval_main(["--run", str(root / "run"), "--data", str(tmp_path / "test_file.h5"), "--out",
                      str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err
    assert "test_file.h5" in err and "no fully sampled target" in err
    out = tmp_path / "recons"
    assert recon_main(["--checkpoint", str(root / "run"), "--in", str(tmp_path / "test_file.h5"), "--out", str(out),
                       "--no-figures"]) == 0
    with h5py.File(out / "test_file.h5") as f:
        assert f["reconstruction"].shape[0] == 2 and np.isfinite(f["reconstruction"][()]).all()


def test_run_directories_are_read_through_their_best_checkpoint(trained, capsys):
    root, _ = trained
    best = root / "run" / "checkpoints" / "best.pt"
    state = torch.load(best, weights_only=True)
    assert state["best"]["metric"] == "psnr" and state["best"]["iteration"] == state["iteration"]
    assert eval_main(["--run", str(root / "run"), "--limit", "1"]) == 0
    captured = capsys.readouterr()
    assert f"reading {best} (best validation psnr" in captured.err
    assert "PSNR: per volume (fastMRI's convention" in captured.out
    latest = latest_checkpoint(root / "run")
    assert eval_main(["--checkpoint", str(latest), "--limit", "1"]) == 0
    assert f"reading {latest} (iteration" in capsys.readouterr().err


def test_masks_from_a_yaml_file(trained, tmp_path, capsys):
    root, _ = trained
    spec = tmp_path / "masks.yaml"
    spec.write_text("type: equispaced\ncenter_fractions: [0.08]\naccelerations: [8]\n")
    csv_path = tmp_path / "e.csv"
    assert eval_main(["--run", str(root / "run"), "--masks", str(spec), "--limit", "1", "--out", str(csv_path)]) == 0
    capsys.readouterr()
    with open(csv_path) as f:
        zf8 = float(next(csv.DictReader(f))["psnr_zf"])
    assert eval_main(["--run", str(root / "run"), "--limit", "1", "--out", str(csv_path)]) == 0
    with open(csv_path) as f:
        zf4 = float(next(csv.DictReader(f))["psnr_zf"])
    assert zf8 < zf4 - 0.5                     # the file's 8x masks were used, not the run's 3x
    assert eval_main(["--run", str(root / "run"), "--masks", str(tmp_path / "nope.yaml")]) == 2
    assert "neither a YAML mapping nor an existing YAML file" in capsys.readouterr().err
    spec.write_text("type: random\n")
    assert eval_main(["--run", str(root / "run"), "--masks", str(spec)]) == 2
    assert "the contents of" in capsys.readouterr().err


def test_recon_formats_through_the_cli(trained, tmp_path, capsys):
    import nibabel as nib
    import pydicom

    root, files = trained
    recon, _, _, scale = own_reconstruction(root / "run", files[0])
    expected = (recon / scale).abs()[:, 0].numpy()                    # (slices, 32, 32)
    out = tmp_path / "o"
    for fmt in ("nifti", "dicom", "png"):
        assert recon_main(["--checkpoint", str(root / "run"), "--in", str(files[0]), "--out", str(out), "--format", fmt,
                           "--no-figures"]) == 0
    img = nib.load(out / f"{files[0].stem}.nii.gz")
    torch.testing.assert_close(torch.from_numpy(np.asarray(img.dataobj)), torch.from_numpy(expected.transpose(1, 2, 0)),
                               rtol=1e-4, atol=1e-5)
    assert img.header.get_zooms() == pytest.approx((280 / 32, 280 / 32, 4.5))   # the synthetic files' header
    series = [pydicom.dcmread(p) for p in sorted((out / files[0].stem).glob("*.dcm"))]
    assert len(series) == 3 and [float(v) for v in series[0].PixelSpacing] == pytest.approx([280 / 32] * 2)
    assert float(series[0].SliceThickness) == pytest.approx(4.5)
    assert len(list((out / files[0].stem).glob("*.png"))) == 3
