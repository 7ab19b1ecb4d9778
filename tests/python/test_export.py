"""gleam-export: pt2 (torch.export + AOTInductor) and TorchScript artifacts of tiny trained runs
(2D, 3D, cine), loaded in a fresh process that imports only torch and gleam_core.ops, give
gleam-recon's reconstruction of a file acquired undersampled, within 1e-5 relative (complex64).
The pt2 package keeps batch, coil and spatial sizes symbolic. AOTInductor compiles C++ for each
package (~15-50 s on a 2-core CPU), so each kind is exported once per format and reused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch

from gleam_core.cli.export import main as export_main
from gleam_core.cli.recon import main as recon_main
from gleam_core.metrics import center_crop
from gleam_core.ops import rss
from gleam_core.recon import ReconNet
from gleam_core.recon.export import example_inputs
from ops_cases import rel
from recon_cases import model_inputs, tiny_run, undersampled_file

pytestmark = pytest.mark.usefixtures("single_thread")
KINDS = ["2d", "3d", "cine"]

# Run in a fresh interpreter: only torch and gleam_core.ops (which registers the gleam:: ops).
FRESH = r"""
import json, sys, torch
import gleam_core.ops
path, fmt, inputs, out = sys.argv[1:]
if fmt == "pt2":
    model = torch._inductor.aoti_load_package(path)
    meta = json.loads(model.get_metadata()["gleam"])
else:
    files = {"gleam.json": ""}
    model = torch.jit.load(path, _extra_files=files)
    meta = json.loads(files["gleam.json"])
with torch.no_grad():
    images = [model(*args) for args in torch.load(inputs)]
torch.save({"images": images, "meta": meta, "modules": sorted(m for m in sys.modules if m.startswith("gleam_core"))},
           out)
"""


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """Per kind: the run, an undersampled input file and gleam-recon's output for it."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for kind in KINDS:
        run = tiny_run(root, kind)
        path = undersampled_file(root / f"data_{kind}", kind)
        assert recon_main(["--checkpoint", str(run), "--in", str(path), "--out", str(root / f"recon_{kind}"),
                           "--no-figures"]) == 0
        with h5py.File(root / f"recon_{kind}" / path.name, "r") as f:
            recon = torch.from_numpy(f["reconstruction"][()])
        out[kind] = {"run": run, "file": path, "gleam_recon": recon, "root": root}
    return out


@pytest.fixture(scope="module")
def artifacts(cases):
    """Exports lazily, once per (kind, format)."""
    made: dict[tuple[str, str], Path] = {}

    def get(kind: str, fmt: str) -> Path:
        if (kind, fmt) not in made:
            path = cases[kind]["root"] / f"{kind}.{'pt2' if fmt == 'pt2' else 'pt'}"
            assert export_main(["--run", str(cases[kind]["run"]), "--out", str(path), "--format", fmt]) == 0
            made[kind, fmt] = path
        return made[kind, fmt]
    return get


def run_fresh(artifact: Path, fmt: str, inputs: list[tuple[torch.Tensor, ...]], tmp: Path,
              env: dict[str, str] | None = None) -> dict:
    torch.save(inputs, tmp / "inputs.pt")
    subprocess.run([sys.executable, "-c", FRESH, str(artifact), fmt, str(tmp / "inputs.pt"), str(tmp / "out.pt")],
                   check=True, timeout=300, env={**os.environ, **(env or {})})
    return torch.load(tmp / "out.pt")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
@pytest.mark.parametrize("kind", KINDS)
def test_exported_model_reproduces_gleam_recon(cases, artifacts, kind, fmt, tmp_path):
    case = cases[kind]
    inputs = model_inputs(case["file"], kind)
    got = run_fresh(artifacts(kind, fmt), fmt, [inputs], tmp_path)
    # The network's code (models, recon, train, data) stays out: the artifact carries it.
    layers = ("gleam_core.models", "gleam_core.recon", "gleam_core.train", "gleam_core.data")
    assert "gleam_core.ops" in got["modules"] and not [m for m in got["modules"] if m.startswith(layers)], \
        got["modules"]
    image = got["images"][0]
    assert image.dtype == torch.complex64 and image.shape[0] == inputs[0].shape[0]
    with torch.no_grad():
        eager = ReconNet.from_run(case["run"])(*inputs)
    assert rel(image, eager) < 1e-5
    # gleam-recon's file: the magnitude over map sets, (slices, H, W) in 2D, (D, H, W) / (T, H, W) otherwise.
    magnitude = rss(image, dim=1)
    magnitude = magnitude if kind == "2d" else magnitude[0]
    reference = case["gleam_recon"]
    assert rel(center_crop(magnitude, tuple(reference.shape[-2:])), reference) < 1e-5
    meta = got["meta"]
    assert meta["kind"] == kind and meta["fft_ndim"] == (3 if kind == "3d" else 2) and meta["artifact"] == fmt
    assert meta["spec"]["strategy"] == "gleam" and "quantile" in meta["normalization"]
    assert meta["inputs"]["kspace"]["dtype"] == "complex64"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_sizes_are_free(cases, artifacts, fmt, tmp_path):
    """Other batch, coil and spatial sizes (odd ones too) than the export's example."""
    recon = ReconNet.from_run(cases["2d"]["run"])
    shapes = [(1, 2, 20, 9), (3, 5, 11, 24)]
    inputs = [example_inputs("2d", s, 1, "W", seed=i) for i, s in enumerate(shapes)]
    got = run_fresh(artifacts("2d", fmt), fmt, inputs, tmp_path)
    with torch.no_grad():
        for args, image in zip(inputs, got["images"]):
            assert rel(image, recon(*args)) < 1e-5


@pytest.mark.slow
def test_pt2_refuses_a_wrong_layout(cases, artifacts, tmp_path):
    """With AOTInductor's input checks on, a mask of another layout than exported (a 2D mask for
    a 1D-mask export) is refused, not broadcast silently."""
    kspace, maps, _ = example_inputs("2d", (2, 3, 16, 16), 1, "W")
    mask = torch.ones(1, 1, 16, 16)
    with pytest.raises(subprocess.CalledProcessError):
        run_fresh(artifacts("2d", "pt2"), "pt2", [(kspace, maps, mask)], tmp_path, {"AOTI_RUNTIME_CHECK_INPUTS": "1"})


def test_export_arguments_are_checked(cases, tmp_path, capsys):
    run = str(cases["2d"]["run"])
    assert export_main(["--run", run, "--out", str(tmp_path / "m.pt2"), "--mask-axes", "Q"]) == 2
    assert "mask_axes must be distinct letters of 'HW'" in capsys.readouterr().err
    assert export_main(["--run", run, "--out", str(tmp_path / "m.pt2"), "--shape", "1,4,16,16"]) == 2
    assert "size < 2" in capsys.readouterr().err
    assert export_main(["--run", run, "--out", str(tmp_path / "m.pt2"), "--shape", "2,4,16"]) == 2
    assert "(B, C, H, W)" in capsys.readouterr().err
    assert export_main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.pt2")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.pt2")) and not list(tmp_path.glob(".m.pt2*"))


def test_metadata_round_trips_in_torchscript(cases, artifacts, tmp_path):
    files = {"gleam.json": ""}
    torch.jit.load(str(artifacts("2d", "torchscript")), _extra_files=files)
    meta = json.loads(files["gleam.json"])
    assert meta["mask_shape"] == "(1, 1, 1, W)" and meta["map_sets"] == 1 and meta["dynamic"] is True
