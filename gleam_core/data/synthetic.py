"""Synthetic multi-coil data: on-the-fly datasets and files in the formats of this package.

Kinds (default item shapes, 8 coils):

=========  ====================  =========================================================
kind       default shape         what
=========  ====================  =========================================================
knee2d     (H, W) = (128, 112)   coronal knee slices; files in fastMRI layout
brain2d    (H, W) = (128, 128)   axial brain slices; files in fastMRI layout
knee3d     (D, H, W) = (48, 64,  3D knee volume, D the readout (superior-inferior); vol3d
           48)                   files; items are volumes or ky-kz slices
cine       (T, H, W) = (12, 96,  short-axis cine over one heartbeat (periodic motion);
           96)                   cine files
=========  ====================  =========================================================

2D kinds come in volumes of ``slices`` slices (cross-sections of one 3D phantom); item
``i`` is slice ``i % slices`` of volume ``i // slices`` and file ``v`` holds volume ``v``,
so :class:`SyntheticDataset` and ``gleam-data synth`` produce the same data. Everything is a
pure function of (seed, volume, slice): anatomy, coil array, background phase and the
complex Gaussian k-space noise (standard deviation ``noise`` times the mean object magnitude).
Maps are the true (normalized) coil sensitivities, so the target is the noisy image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..atomic import output_folder
from ..ops import fft2c, fftnc, ifftnc
from . import phantoms
from .base import MaskedDataset
from .cine import write_cine
from .fastmri import write_fastmri
from .formats import DataFormatError, open_h5
from .masks import MaskFunc
from .transforms import make_item
from .volume import write_volume

DEFAULT_SHAPES = {"knee2d": (128, 112), "brain2d": (128, 128), "knee3d": (48, 64, 48), "cine": (12, 96, 96)}
_ANATOMY = {"knee2d": "knee", "brain2d": "brain", "knee3d": "knee", "cine": "heart"}
_Z_RANGE = {"knee2d": (-0.22, 0.22), "brain2d": (-0.3, 0.45)}     # slice positions of a 2D volume
_COIL_RING = {"knee": (1, (0.95, 0.9)), "brain": (2, (0.85, 1.0)), "heart": (2, (1.0, 0.75))}  # axis, radii


@dataclass(frozen=True)
class SynthConfig:
    """What to generate: ``shape`` is the item's spatial shape S (default per kind)."""

    kind: str
    shape: tuple[int, ...] | None = None
    coils: int = 8
    slices: int = 8
    noise: float = 0.02

    def __post_init__(self) -> None:
        if self.kind not in DEFAULT_SHAPES:
            raise ValueError(f"kind must be one of {sorted(DEFAULT_SHAPES)}, got {self.kind!r}")
        ndim = len(DEFAULT_SHAPES[self.kind])
        if self.shape is not None and (len(self.shape) != ndim or any(int(n) < 8 for n in self.shape[-2:])):
            raise ValueError(f"shape for {self.kind} must have {ndim} sizes with the last two >= 8, got {self.shape}")
        if not (isinstance(self.coils, int) and self.coils >= 1):
            raise ValueError(f"coils must be a positive int, got {self.coils!r}")
        if not (isinstance(self.slices, int) and self.slices >= 1):
            raise ValueError(f"slices must be a positive int, got {self.slices!r}")
        if not self.noise >= 0:
            raise ValueError(f"noise must be >= 0, got {self.noise!r}")

    @property
    def size(self) -> tuple[int, ...]:
        return tuple(int(n) for n in (self.shape or DEFAULT_SHAPES[self.kind]))

    @property
    def item_kind(self) -> str:
        return {"knee2d": "2d", "brain2d": "2d", "knee3d": "3d", "cine": "cine"}[self.kind]


def _rng(seed: int, volume: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(volume), stream])


def _coils(cfg: SynthConfig, seed: int, volume: int) -> phantoms.CoilArray:
    axis, radii = _COIL_RING[_ANATOMY[cfg.kind]]
    return phantoms.CoilArray.ring(_rng(seed, volume, 1), cfg.coils, axis, radii, heights=2 if cfg.coils >= 8 else 1)


def _add_noise(kspace: Tensor, image: Tensor, level: float, seed: int, volume: int, index: int) -> Tensor:
    if level == 0:
        return kspace
    mag = image.abs()
    sigma = level * float(mag[mag > 0.1 * mag.max()].mean())
    g = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, volume, index, 3]).generate_state(1)[0]))
    noise = torch.randn(kspace.shape, generator=g, dtype=kspace.dtype)  # complex: unit variance in total
    return kspace + sigma * noise


def synth_volume(cfg: SynthConfig, seed: int, volume: int, slices: list[int] | None = None) -> tuple[Tensor, Tensor]:
    """Fully sampled k-space and true maps of one volume, in item layout.

    2D kinds: kspace (n, C, H, W), maps (n, C, 1, H, W) for the requested slices (default all);
    knee3d: kspace (C, D, H, W), maps (C, 1, D, H, W); cine: kspace (C, T, H, W), maps
    (C, 1, 1, H, W).
    """
    anatomy = phantoms.ANATOMIES[_ANATOMY[cfg.kind]]
    size = cfg.size
    coils = _coils(cfg, seed, volume)
    edge = 0.5 / max(size[-2:])
    if cfg.item_kind == "2d":
        lo, hi = _Z_RANGE[cfg.kind]
        zs = [0.5 * (lo + hi)] if cfg.slices == 1 else np.linspace(lo, hi, cfg.slices).tolist()
        ks, ms = [], []
        for s in (range(cfg.slices) if slices is None else slices):
            c = phantoms.grid_coords(size, zs[s])
            image = anatomy(_rng(seed, volume, 0), c, edge) * torch.exp(1j * phantoms.background_phase(
                _rng(seed, volume, 2), c))
            maps = coils(c)
            ks.append(_add_noise(fft2c(maps * image), image, cfg.noise, seed, volume, s))
            ms.append(maps.unsqueeze(1))
        return torch.stack(ks).to(torch.complex64), torch.stack(ms).to(torch.complex64)
    if cfg.item_kind == "3d":
        c = phantoms.grid_coords(size)
        image = anatomy(_rng(seed, volume, 0), c, edge) * torch.exp(1j * phantoms.background_phase(
            _rng(seed, volume, 2), c))
        maps = coils(c)
        k = _add_noise(fftnc(maps * image, (-3, -2, -1)), image, cfg.noise, seed, volume, 0)
        return k.to(torch.complex64), maps.unsqueeze(1).to(torch.complex64)
    frames, h, w = size
    c = phantoms.grid_coords((h, w), 0.0)
    phase = torch.exp(1j * phantoms.background_phase(_rng(seed, volume, 2), c))
    image = torch.stack([anatomy(_rng(seed, volume, 0), c, edge, t / frames) for t in range(frames)]) * phase
    maps = coils(c)
    k = _add_noise(fft2c(maps.unsqueeze(1) * image), image, cfg.noise, seed, volume, 0)
    return k.to(torch.complex64), maps.reshape(cfg.coils, 1, 1, h, w).to(torch.complex64)


def synthetic_name(kind: str, seed: int, volume: int) -> str:
    """File name of a synthetic volume (also the fixed-mask seed of its items)."""
    return f"{kind}_s{seed}_{volume:05d}.h5"


class SyntheticDataset(MaskedDataset):
    """Synthetic items generated on the fly (no files), deterministic per (seed, index).

    Args:
        kind: knee2d | brain2d | knee3d | cine.
        n: number of items (2D: slices, volumes of ``slices`` slices; knee3d: volumes, or ky-kz
            slices with ``mode="slices"``; cine: cine series).
        seed: data seed (anatomy, coils, noise) and base seed of the training masks.
        mask, fixed_masks: as the file datasets; fixed masks are seeded from the volume's file
            name (:func:`synthetic_name`), like the files ``gleam-data synth`` writes.
        mode: knee3d only, "volume" or "slices".
        shape, coils, slices, noise: see :class:`SynthConfig`.
        fresh: training sets only (``fixed_masks=False``): every epoch draws new volumes, so
            epoch ``e`` yields the ``n`` items of volumes ``e * V .. (e + 1) * V - 1`` (``V``
            the volumes that ``n`` items span) instead of the same ``n`` items again; a small
            ``n`` then no longer means a small training set (no overfitting to it). Validation
            sets (other seed) never meet these volumes.
    """

    def __init__(self, kind: str, n: int, seed: int = 0, *, mask: Mapping[str, Any] | MaskFunc | None = None,
                 fixed_masks: bool = False, mode: str = "volume", shape: tuple[int, ...] | None = None,
                 coils: int = 8, slices: int = 8, noise: float = 0.02, fresh: bool = False) -> None:
        super().__init__(mask, fixed_masks, seed)
        self.cfg = SynthConfig(kind, shape, coils, slices, noise)
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n must be a positive int, got {n!r}")
        if mode not in ("volume", "slices") or (mode == "slices" and kind != "knee3d"):
            raise ValueError(f"mode must be 'volume' (or 'slices' for knee3d), got {mode!r} for kind {kind!r}")
        if not isinstance(fresh, bool) or (fresh and fixed_masks):
            raise ValueError(f"fresh must be a bool, and False for fixed-mask (validation) data, got {fresh!r} with "
                             f"fixed_masks={fixed_masks!r}")
        self.n, self.mode, self.fresh = n, mode, fresh
        size = self.cfg.size
        self.check_mask(size[1:] if mode == "slices" else size)
        self._cache: tuple[int, Tensor, Tensor] | None = None  # last hybrid knee3d volume (slice mode)

    def __len__(self) -> int:
        return self.n

    def _volume_offset(self, per_volume: int) -> int:
        """The first volume of this epoch: 0, or with ``fresh`` the epoch times the volumes an
        epoch spans (``per_volume`` items each)."""
        return self.epoch * -(-self.n // per_volume) if self.fresh else 0

    def _hybrid_volume(self, v: int) -> tuple[Tensor, Tensor]:
        """Readout-transformed k-space (C, D, H, W) and maps of knee3d volume v (cached)."""
        if self._cache is None or self._cache[0] != v:
            k, m = synth_volume(self.cfg, self.seed, v)
            self._cache = (v, ifftnc(k, 1), m)
        return self._cache[1], self._cache[2]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.n:
            raise IndexError(f"SyntheticDataset index {index} out of range for {self.n} items")
        cfg = self.cfg
        kind = cfg.item_kind
        if kind == "2d":
            v, s = divmod(index, cfg.slices)
            v += self._volume_offset(cfg.slices)
            k, m = synth_volume(cfg, self.seed, v, [s])
            k, m = k[0], m[0]
        elif self.mode == "slices":
            v, s = divmod(index, cfg.size[0])
            v += self._volume_offset(cfg.size[0])
            k, m = self._hybrid_volume(v)
            k, m = k[:, s], m[:, :, s]                          # one ky-kz slice
            kind = "2d"
        else:
            v, s = index + self._volume_offset(1), -1
            k, m = synth_volume(cfg, self.seed, v)
        name = synthetic_name(cfg.kind, self.seed, v)
        mask = self.mask_for(tuple(k.shape[1:]), index, name)
        meta = {"file": f"synthetic:{name}", "slice": s, "acquisition": f"SYNTH_{cfg.kind.upper()}"}
        return make_item(k, m, mask, kind=kind, meta=meta)


def synthetic_params(cfg: SynthConfig, seed: int, volume: int) -> dict[str, Any]:
    """The generation parameters of synthetic volume ``volume``, as its file's ``synth_*`` attrs
    (``synth_slices`` only for the 2D kinds, where it changes the data)."""
    params: dict[str, Any] = {"synth_kind": cfg.kind, "synth_seed": int(seed), "synth_volume": int(volume),
                              "synth_shape": np.asarray(cfg.size, dtype=np.int64), "synth_coils": int(cfg.coils)}
    if cfg.item_kind == "2d":
        params["synth_slices"] = int(cfg.slices)
    params["synth_noise"] = float(cfg.noise)
    return params


def _plain(value: Any) -> Any:
    """An attribute value in a comparable form (str, int, float or tuple)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return tuple(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def synthetic_file_differs(path: str | Path, params: Mapping[str, Any]) -> str | None:
    """None when ``path`` is a complete synthetic file generated with ``params``
    (:func:`synthetic_params`), else why not: the first differing parameter (``"shape (31, 33),
    not (48, 48)"``), one not recorded (a file from an older version), or an unreadable file."""
    try:
        with open_h5(path) as f:
            if "kspace" not in f:
                return "no 'kspace' dataset"
            have = {key: _plain(f.attrs[key]) for key in params if key in f.attrs}
    except DataFormatError as exc:
        return str(exc)
    for key, want in params.items():
        name = key[len("synth_"):]
        if key not in have:
            return f"{name} not recorded"
        if have[key] != _plain(want):
            return f"{name} {have[key]!r}, not {_plain(want)!r}"
    return None


@dataclass
class SynthReport:
    """What :func:`synthesize` did: ``paths`` the n files of the run; of them ``written`` (new
    or replaced), ``kept`` (made before with the same parameters), and ``replaced`` (path, why)
    for the written files that replaced one made with other parameters."""

    paths: list[Path] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    replaced: list[tuple[Path, str]] = field(default_factory=list)


def synthesize(out_dir: str | Path, cfg: SynthConfig, n: int, seed: int, progress: bool = True) -> SynthReport:
    """Writes ``n`` synthetic volumes (files) to ``out_dir`` in the kind's format, with their
    generation parameters in ``synth_*`` attrs (:func:`synthetic_params`). A file that exists
    and was generated with the same parameters is kept (rerunning resumes); one generated with
    other parameters (or unreadable) is regenerated and replaced atomically."""
    from tqdm import tqdm

    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n (number of files) must be >= 1, got {n!r}")
    out = output_folder(out_dir, "out_dir")
    report = SynthReport()
    for v in tqdm(range(n), desc=f"synth {cfg.kind}", unit="file", disable=not progress):
        path = out / synthetic_name(cfg.kind, seed, v)
        report.paths.append(path)
        params = synthetic_params(cfg, seed, v)
        if path.exists():
            why = synthetic_file_differs(path, params)
            if why is None:
                report.kept.append(path)
                continue
            report.replaced.append((path, why))
        k, m = synth_volume(cfg, seed, v)
        acquisition = f"SYNTH_{cfg.kind.upper()}"
        if cfg.item_kind == "2d":
            write_fastmri(path, k.numpy(), maps=m.numpy(), acquisition=acquisition, attrs=params)
        elif cfg.item_kind == "3d":
            write_volume(path, k, m, attrs={"acquisition": acquisition, **params})
        else:
            write_cine(path, k.transpose(0, 1), m[:, :, 0], attrs={"acquisition": acquisition, **params})
        report.written.append(path)
    return report


def write_synthetic(out_dir: str | Path, cfg: SynthConfig, n: int, seed: int, progress: bool = True) -> list[Path]:
    """:func:`synthesize` returning just the ``n`` file paths."""
    return synthesize(out_dir, cfg, n, seed, progress).paths
