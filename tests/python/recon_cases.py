"""Tiny trained runs and undersampled input files of each data kind, shared by the ReconNet,
export and C++ inference tests (the ctest fixture ``tests/cpp/infer_fixture.py`` too)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from gleam_core.data import SynthConfig, write_cine, write_fastmri, write_synthetic, write_volume
from gleam_core.data.masks import mask_from_spec

SYNTH = {"2d": ("knee2d", (16, 16)), "3d": ("knee3d", (6, 16, 12)), "cine": ("cine", (5, 16, 12))}
MASKS = {"2d": {"type": "random", "center_fractions": [0.2], "accelerations": [2]},
         "3d": {"type": "poisson", "acceleration": 2, "calib": [4, 4]},
         "cine": {"type": "kt", "acceleration": 2, "center_lines": 4}}
MODELS = {"2d": {"type": "pgd", "unrolls": 2, "denoiser": {"features": 4, "blocks": 1}},
          "3d": {"type": "modl", "unrolls": 2, "cg_iters": 3, "denoiser": {"type": "cnn", "features": 4, "layers": 3}},
          "cine": {"type": "pgd", "unrolls": 2, "denoiser": {"features": 4, "blocks": 1, "conv": "2+1d"}}}


def tiny_run(root: Path, kind: str, iterations: int = 2) -> Path:
    """Trains a seconds-long GLEAM run (2 modules) on synthetic data of ``kind``; returns its directory."""
    from gleam_core.train.spec import parse_spec
    from gleam_core.train.trainer import Trainer

    synth, shape = SYNTH[kind]
    data = {"kind": synth, "n": 2, "shape": list(shape), "coils": 3, "slices": 2}
    raw = {"output": str(root / f"run_{kind}"), "strategy": "gleam", "threads": 1,
           "data": {"kind": kind, "batch_size": 1, "val_batch_size": 1,
                    "train": {"synthetic": data}, "val": {"synthetic": {**data, "n": 1}}},
           "masks": MASKS[kind], "model": MODELS[kind], "gleam": {"modules": 2},
           "optimizer": {"lr": 1e-3},
           "schedule": {"iterations": iterations, "val_every": iterations, "checkpoint_every": iterations,
                        "keep_last": 1},
           "logging": {"every": iterations, "progress": False, "tensorboard": False, "images": False}}
    Trainer(parse_spec(raw)).run()
    return root / f"run_{kind}"


def undersampled_file(out_dir: Path, kind: str, seed: int = 11) -> Path:
    """A file of our HDF5 formats acquired undersampled (it carries its mask), made from a fresh
    synthetic volume and the kind's mask function: fastMRI (2d), vol3d (3d), cine."""
    synth, shape = SYNTH[kind]
    src = write_synthetic(out_dir / "src", SynthConfig(synth, shape, coils=3, slices=2), n=1, seed=seed,
                          progress=False)[0]
    with h5py.File(src, "r") as f:
        kspace, maps = f["kspace"][()], f["maps"][()]
    func = mask_from_spec(MASKS[kind])
    path = out_dir / f"{kind}_undersampled.h5"
    if kind == "2d":
        mask = func(kspace.shape[-2:], "fixed").reshape(-1).numpy()        # (W,)
        write_fastmri(path, kspace * mask, maps=maps, mask=mask)
    elif kind == "3d":
        mask = func(kspace.shape[1:], "fixed").reshape(kspace.shape[-2:]).numpy()  # (H, W)
        write_volume(path, kspace * mask, maps, mask=mask)
    else:
        frames, _, h, w = kspace.shape
        mask = func((frames, h, w), "fixed").reshape(frames, w).numpy()   # (T, W)
        write_cine(path, kspace * mask[:, None, None, :], maps, mask=mask)
    return path


def model_inputs(path: Path, kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """kspace (N, C, *S), maps (N, C, M, *S) and mask in the export's default layout, read from an
    undersampled file as ``gleam-infer`` reads it (N = slices for 2d, else 1)."""
    with h5py.File(path, "r") as f:
        kspace, maps, mask = (torch.from_numpy(np.asarray(f[k][()])) for k in ("kspace", "maps", "mask"))
    mask = mask.float()
    if kind == "2d":
        return kspace, maps, mask.reshape(1, 1, 1, -1)
    if kind == "3d":
        return kspace[None], maps[None], mask.reshape(1, 1, 1, *mask.shape)
    # Contiguous, as exported packages expect (AOTInductor assumes the example's strides).
    return (kspace.transpose(0, 1)[None].contiguous(), maps[:, :, None][None],
            mask.reshape(1, 1, mask.shape[0], 1, mask.shape[1]))
