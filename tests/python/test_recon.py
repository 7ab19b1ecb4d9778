"""gleam_core.recon: ReconNet (tensors in, image out, normalization inside) equals the data
pipeline's reconstruction (gleam-recon's path), loads from runs and checkpoint files of any
strategy, checks its inputs, and the package never imports the trainer."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from gleam_core.data import FastMRIDataset
from gleam_core.data.transforms import robust_max
from gleam_core.recon import ReconNet, latest_checkpoint, load_model, reconstruct_volumes, robust_peak
from recon_cases import model_inputs, tiny_run, undersampled_file

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("recon")
    return tiny_run(root, "2d"), undersampled_file(root / "data", "2d")


@pytest.mark.parametrize("shape", [(2, 37, 41), (3, 150), (1, 5, 4, 7), (2, 50)])
def test_robust_peak_is_the_data_pipelines_robust_max(shape):
    x = torch.randn(shape, dtype=torch.complex64)
    peak = robust_peak(x)
    assert peak.shape == (shape[0],)
    assert [float(p) for p in peak] == [robust_max(x[i]) for i in range(shape[0])]


def test_reconnet_equals_the_pipeline(case):
    """File units in and out: ReconNet on the file's raw k-space equals reconstruct_volumes on
    the dataset's scaled items, scaled back (what gleam-recon writes)."""
    run, path = case
    model, state = load_model(run)
    dataset = FastMRIDataset(str(path), mask=state["spec"]["masks"], fixed_masks=True, verbose=False)
    (volume,) = reconstruct_volumes(model, dataset, "2d", torch.device("cpu"))
    recon = ReconNet.from_run(run)
    assert len(recon.net.unrolls) == state["spec"]["model"]["unrolls"]  # GLEAM: the whole chain of modules
    kspace, maps, mask = model_inputs(path, "2d")
    with torch.no_grad():
        image = recon(kspace, maps, mask)
        one = recon(kspace[1:2], maps[1:2], mask)
    assert image.dtype == torch.complex64 and image.shape == (2, 1, 16, 16)
    assert float((image - volume.recon).norm() / volume.recon.norm()) < 1e-5
    assert float((one[0] - image[1]).norm() / image[1].norm()) < 1e-5   # per-element normalization
    # Scale equivariance: the normalization makes the output follow the units of the input.
    with torch.no_grad():
        scaled = recon(kspace * 1e3, maps, mask)
    assert float((scaled - image * 1e3).norm() / (image * 1e3).norm()) < 1e-5


def test_from_run_accepts_a_checkpoint_file(case):
    run, _ = case
    recon = ReconNet.from_run(latest_checkpoint(run))
    meta = recon.metadata()
    assert meta["kind"] == "2d" and meta["fft_ndim"] == 2 and meta["map_sets"] == 1
    assert meta["spec"]["strategy"] == "gleam" and meta["model_description"]["kind"] == "2d"


def test_reconnet_checks_its_inputs(case):
    run, path = case
    recon = ReconNet.from_run(run)
    kspace, maps, mask = model_inputs(path, "2d")
    with pytest.raises(ValueError, match=r"kspace must be complex64 with 4 dims for '2d' data, got dtype "
                                         r"torch.complex128"):
        recon(kspace.to(torch.complex128), maps, mask)
    with pytest.raises(ValueError, match=r"maps must be complex64 with 5 dims"):
        recon(kspace, maps[:, :, 0], mask)
    with pytest.raises(ValueError, match=r"mask spatial shape"):
        recon(kspace, maps, torch.ones(1, 1, 1, 7))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ReconNet.from_run(run / "checkpoints" / "iter_99999999.pt")


def test_recon_does_not_import_training():
    code = ("import sys, gleam_core.recon, gleam_core.cli.export; "
            "bad = [m for m in sys.modules if m.startswith('gleam_core.train')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_parse_device_lives_outside_the_strategies():
    from gleam_core.devices import parse_device
    from gleam_core.train.strategies import parse_device as via_strategies

    assert via_strategies is parse_device
    assert parse_device("cpu", "--device") == torch.device("cpu")
    with pytest.raises(ValueError, match="--device: 'tpu' is not a device"):
        parse_device("tpu", "--device")
