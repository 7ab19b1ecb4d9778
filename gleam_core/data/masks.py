"""Undersampling masks: fastMRI 1D masks, CMRxRecon's uniform mask, 2D variable-density Poisson
disc, k-t masks for cine.

Every mask function is a callable ``mask_func(shape, seed) -> Tensor``: ``shape`` is the
item's spatial shape ``S`` ((H, W), (D, H, W) or (T, H, W)) and the result is a float32
0/1 tensor in the *compact* form ``(1, *S')``, broadcastable to ``(1, *S)``, with size 1 on
every axis along which the mask is constant (readout decoupling in ``gleam_core.ops``):

=====================  ==================  ======================
mask                   S                   result
=====================  ==================  ======================
RandomMask1D,          (H, W)              (1, 1, W)
EquispacedMask1D,      (D, H, W)           (1, 1, 1, W)
UniformMask1D          (T, H, W)           (1, 1, 1, W)
PoissonMask2D          (H, W) ky-kz slice  (1, H, W)
                       (D, H, W) volume    (1, 1, H, W)
KtMask                 (T, H, W)           (1, T, 1, W), or (1, T, H, W) with partial echo
=====================  ==================  ======================

Seeds: an ``int``, a sequence of ints, or a ``str``. A string is the fastMRI convention for
fixed validation masks: the file name seeds the generator (``tuple(map(ord, name))`` for the
1D masks, exactly as fastMRI does), so a volume gets the same mask every epoch. Training
draws a fresh mask per item from :func:`training_seed` (base seed, epoch, index).
``None`` draws from fresh OS entropy (not reproducible).
"""

from __future__ import annotations

import hashlib
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

Seed = Union[int, str, Sequence[int], None]

_U64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_GOLDEN_RATIO = (math.sqrt(5.0) - 1.0) / 2.0  # fractional part of the golden ratio


# ---------------------------------------------------------------------------------------------
# seeds

def training_seed(base_seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for the mask of item ``index`` in ``epoch`` (reproducible training runs)."""
    state = np.random.SeedSequence([int(base_seed) & _U64, int(epoch), int(index)]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def _numpy_rng(seed: Seed) -> np.random.RandomState:
    """fastMRI's generator: a string seeds with its character codes."""
    if isinstance(seed, str):
        return np.random.RandomState(tuple(map(ord, seed)))
    if seed is None:
        return np.random.RandomState(np.random.SeedSequence().generate_state(4))
    if isinstance(seed, (int, np.integer)):
        return np.random.RandomState([int(seed) & 0xFFFFFFFF, (int(seed) >> 32) & 0xFFFFFFFF])
    return np.random.RandomState([int(s) & 0xFFFFFFFF for s in seed])


def seed64(seed: Seed) -> int:
    """A uint64 seed for the compiled samplers (strings and sequences are hashed, stably)."""
    if isinstance(seed, (int, np.integer)):
        return int(seed) & _U64
    if seed is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    text = seed if isinstance(seed, str) else ",".join(str(int(s)) for s in seed)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


# ---------------------------------------------------------------------------------------------
# mask functions

def _check_shape(shape: Sequence[int], min_ndim: int, name: str) -> tuple[int, ...]:
    try:
        s = tuple(int(n) for n in shape)
    except TypeError as exc:
        raise ValueError(f"{name}: shape must be a sequence of ints, got {shape!r}") from exc
    if len(s) < min_ndim or any(n < 1 for n in s):
        raise ValueError(f"{name}: shape must have at least {min_ndim} positive sizes, got {s}")
    return s


def mask_acceleration(mask: Tensor) -> float:
    """Achieved acceleration numel / samples of a (compact) 0/1 mask."""
    total = float(mask.sum())
    return float("inf") if total == 0 else mask.numel() / total


class MaskFunc(ABC):
    """A callable ``(shape, seed) -> (1, *S') float32`` mask in compact form (module docstring)."""

    kind: str

    @abstractmethod
    def __call__(self, shape: Sequence[int], seed: Seed = None) -> Tensor: ...

    @abstractmethod
    def to_spec(self) -> dict[str, Any]:
        """The spec dict that :func:`mask_from_spec` turns back into this function."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_spec().items() if k != "type")
        return f"{type(self).__name__}({args})"


class _Mask1D(MaskFunc):
    """fastMRI's column masks along the last axis (W): a fully sampled center of
    ``round(W * cf)`` columns starting at ``(W - num_low + 1) // 2``, plus other columns; one
    ``(center_fraction, acceleration)`` pair is drawn per call."""

    def __init__(self, center_fractions: Sequence[float], accelerations: Sequence[float]) -> None:
        cfs, accs = list(center_fractions), list(accelerations)
        if not cfs or len(cfs) != len(accs):
            raise ValueError(f"{self.kind} mask: center_fractions and accelerations must be non-empty lists of "
                             f"equal length, got {cfs!r} and {accs!r}")
        for cf, acc in zip(cfs, accs):
            if not 0.0 <= float(cf) < 1.0:
                raise ValueError(f"{self.kind} mask: center fraction must be in [0, 1), got {cf!r}")
            if not float(acc) >= 1.0:
                raise ValueError(f"{self.kind} mask: acceleration must be >= 1, got {acc!r}")
            if float(cf) * float(acc) > 1.0:
                raise ValueError(f"{self.kind} mask: acceleration {acc} cannot be reached with center fraction {cf} "
                                 f"(the center alone keeps {cf * 100:.1f}% of the columns, more than 1/{acc})")
        self.center_fractions, self.accelerations = cfs, accs

    def to_spec(self) -> dict[str, Any]:
        return {"type": self.kind, "center_fractions": self.center_fractions, "accelerations": self.accelerations}

    @abstractmethod
    def _outer(self, rng: np.random.RandomState, num_cols: int, acceleration: float, num_low: int) -> np.ndarray: ...

    def __call__(self, shape: Sequence[int], seed: Seed = None) -> Tensor:
        s = _check_shape(shape, 1, f"{self.kind} mask")
        num_cols = s[-1]
        rng = _numpy_rng(seed)
        choice = rng.randint(len(self.center_fractions))
        cf, acc = self.center_fractions[choice], self.accelerations[choice]
        num_low = round(num_cols * cf)
        mask = np.zeros(num_cols, dtype=bool)
        pad = (num_cols - num_low + 1) // 2
        mask[pad:pad + num_low] = True
        mask |= self._outer(rng, num_cols, acc, num_low)
        return torch.from_numpy(mask.astype(np.float32)).reshape((1,) * len(s) + (num_cols,))


class RandomMask1D(_Mask1D):
    """fastMRI ``RandomMaskFunc``: each non-center column kept with probability
    ``(W / acc - num_low) / (W - num_low)`` (same random stream as fastMRI for a given seed)."""

    kind = "random"

    def _outer(self, rng, num_cols, acceleration, num_low):
        prob = (num_cols / acceleration - num_low) / max(num_cols - num_low, 1)
        return rng.uniform(size=num_cols) < prob


class EquispacedMask1D(_Mask1D):
    """fastMRI ``EquispacedMaskFunc``: every ``acc``-th column from a random offset in [0, acc)."""

    kind = "equispaced"

    def __init__(self, center_fractions: Sequence[float], accelerations: Sequence[int]) -> None:
        super().__init__(center_fractions, accelerations)
        for acc in self.accelerations:
            if int(acc) != acc:
                raise ValueError(f"equispaced mask: accelerations must be integers, got {acc!r}")
        self.accelerations = [int(a) for a in self.accelerations]

    def _outer(self, rng, num_cols, acceleration, num_low):
        offset = rng.randint(0, high=round(acceleration))
        mask = np.zeros(num_cols, dtype=bool)
        mask[offset::acceleration] = True
        return mask


class UniformMask1D(MaskFunc):
    """CMRxRecon's "Uniform" mask (the challenge's ``UniformSampling.m`` / ``mySubsampling.m``):
    ``calib`` center lines of W, placed as MATLAB's ``zpad`` centers them (first line
    ``W // 2 - calib // 2``), plus every ``acc``-th line from the first (MATLAB ``1:R:end``).
    Deterministic: the seed only picks one of ``accelerations`` (as the fastMRI masks pick a
    pair). The same lines in every frame; ``calib`` is 24 in CMRxRecon 2023, 16 from 2024.
    ``kt=True`` on cine shapes (T, H, W) gives 2024's "ktUniform" (``ktUniformSampling.m``:
    a Toeplitz lattice of the frames' line patterns) instead: frame t samples the lines
    ``y`` with ``(y - t) % acc == 0``, plus the calibration lines; mask (1, T, 1, W). That is
    the script's mask for even T (cine's 12 frames); for odd T (T1 mapping's 9, T2's 3) the
    script's ``floor(nt)/2`` shifts its lattice by half a frame and leaves the last frame half
    empty, which this mask does not copy: the challenge's own mask files are read as they are
    (:func:`~gleam_core.data.cmrxrecon.read_mask_file`)."""

    kind = "uniform"

    def __init__(self, accelerations: Sequence[int], calib: int = 24, kt: bool = False) -> None:
        accs = list(accelerations) if isinstance(accelerations, Sequence) else [accelerations]
        if not accs or any(not isinstance(a, int) or isinstance(a, bool) or a < 1 for a in accs):
            raise ValueError(f"uniform mask: accelerations must be a non-empty list of integers >= 1, got "
                             f"{accelerations!r}")
        if not isinstance(calib, int) or isinstance(calib, bool) or calib < 0:
            raise ValueError(f"uniform mask: calib must be an integer >= 0, got {calib!r}")
        if not isinstance(kt, bool):
            raise ValueError(f"uniform mask: kt must be true or false, got {kt!r}")
        self.accelerations, self.calib, self.kt = accs, calib, kt

    def to_spec(self) -> dict[str, Any]:
        return {"type": self.kind, "accelerations": self.accelerations, "calib": self.calib, "kt": self.kt}

    def __call__(self, shape: Sequence[int], seed: Seed = None) -> Tensor:
        s = _check_shape(shape, 3 if self.kt else 1, "uniform mask" + (" (kt: shape (T, H, W))" if self.kt else ""))
        cols = s[-1]
        if self.calib > cols:
            raise ValueError(f"uniform mask: calib={self.calib} lines do not fit W={cols}")
        acc = self.accelerations[_numpy_rng(seed).randint(len(self.accelerations))]
        frames = s[-3] if self.kt else 1
        lines = np.arange(cols)
        mask = (lines[None, :] - np.arange(frames)[:, None]) % acc == 0      # (frames, W); frame 0: 1:R:end
        first = cols // 2 - self.calib // 2
        mask[:, first:first + self.calib] = True
        out = torch.from_numpy(mask.astype(np.float32))
        if self.kt:
            return out.reshape((1,) * (len(s) - 2) + (frames, 1, cols))
        return out.reshape((1,) * len(s) + (cols,))


# ---------------------------------------------------------------------------------------------
# Poisson disc (compiled sampler, with a pure-Python mirror of identical semantics)

@dataclass(frozen=True)
class PoissonDiscResult:
    """A (ny, nx) bool mask and how it was made (see csrc/kernels/cpu/poisson_disc.h)."""

    mask: np.ndarray
    samples: int
    acceleration: float
    slope: float
    iterations: int
    adjusted: int


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    v = tuple(int(x) for x in value)
    if len(v) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return v


def _check_poisson(ny: int, nx: int, acceleration: float, calib: tuple[int, int], tol: float, max_iters: int) -> None:
    if not (1 <= ny <= 8192 and 1 <= nx <= 8192):
        raise ValueError(f"poisson mask: shape must be within [1, 8192] per axis, got ({ny}, {nx})")
    if not (0 <= calib[0] <= ny and 0 <= calib[1] <= nx):
        raise ValueError(f"poisson mask: calib {calib} must lie within the shape ({ny}, {nx})")
    if not (math.isfinite(acceleration) and acceleration >= 1.0):
        raise ValueError(f"poisson mask: acceleration must be a finite number >= 1, got {acceleration!r}")
    if not 0.0 < tol < 1.0:
        raise ValueError(f"poisson mask: tol must be in (0, 1), got {tol!r}")
    if max_iters < 1:
        raise ValueError(f"poisson mask: max_iters must be >= 1, got {max_iters!r}")


def _mix64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = z + np.uint64(_GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class _PythonPoisson:
    """Pure-Python mirror of the compiled sampler (the fallback without the extension).

    Every step matches poisson_disc.cpp operation for operation (same hash, order, float
    expressions and exact integer exclusion test), so both return the same mask.
    """

    QUANT = 16

    def __init__(self, ny: int, nx: int, calib: tuple[int, int], seed: int, crop_corner: bool) -> None:
        self.ny, self.nx, self.n = ny, nx, ny * nx
        nmax = float(max(ny, nx))
        self.sx, self.sy, self.cap = nx / nmax, ny / nmax, 4.0 * float(ny + nx)
        num, den, calib_box = _geometry(ny, nx, calib)
        self.r = np.sqrt(num.astype(np.float64) / float(den)).ravel().tolist()
        self.calib_bytes = calib_box.astype(np.uint8).tobytes()
        self.calib_count = int(calib_box.sum())
        cand = ~calib_box & ((num < den) if crop_corner else True)
        idx = np.flatnonzero(cand)
        base = _mix64(np.array([seed], dtype=np.uint64))[0]
        with np.errstate(over="ignore"):
            keys = _mix64(base + idx.astype(np.uint64))
        self.order = idx[np.argsort(keys, kind="stable")].tolist()

    def radii(self, s: float, idx: int) -> tuple[int, int]:
        grow = 1.0 + s * self.r[idx]
        rx = min(max(1.0, grow * self.sx), self.cap)
        ry = min(max(1.0, grow * self.sy), self.cap)
        return math.floor(rx * self.QUANT + 0.5), math.floor(ry * self.QUANT + 0.5)

    def rsa(self, s: float) -> tuple[int, bytearray]:
        q, nx, ny = self.QUANT, self.nx, self.ny
        mask, blocked = bytearray(self.calib_bytes), bytearray(self.n)
        count = self.calib_count
        for idx in self.order:
            if blocked[idx]:
                continue
            mask[idx] = 1
            count += 1
            qx, qy = self.radii(s, idx)
            iy0, ix0 = divmod(idx, nx)
            dy_max = (qy - 1) // q
            for dy in range(max(-dy_max, -iy0), min(dy_max, ny - 1 - iy0) + 1):
                rem = qy * qy - q * q * dy * dy
                dx_max = math.isqrt(qx * qx * rem - 1) // (q * qy)
                row = (iy0 + dy) * nx
                x0, x1 = max(ix0 - dx_max, 0), min(ix0 + dx_max, nx - 1)
                blocked[row + x0:row + x1 + 1] = b"\x01" * (x1 - x0 + 1)
        return count, mask

    def complete(self, s: float, count: int, target: int, mask: bytearray) -> None:
        if count > target:
            extra = count - target
            for idx in reversed(self.order):
                if extra == 0:
                    break
                if mask[idx]:
                    mask[idx] = 0
                    extra -= 1
            return
        free = []
        for pos, idx in enumerate(self.order):
            if not mask[idx]:
                qx, qy = self.radii(s, idx)
                free.append((qx * qy, pos))
        free.sort()
        for _, pos in free[:target - count]:
            mask[self.order[pos]] = 1

    def sample(self, acceleration: float, tol: float, max_iters: int) -> dict[str, Any]:
        n = float(self.n)
        target = math.floor(n / acceleration + 0.5)
        lo_count = math.ceil(n / (acceleration * (1.0 + tol)))
        hi_count = math.floor(n / (acceleration * (1.0 - tol)))
        fine = math.floor(float(target) * tol / 8.0)
        state = {"iterations": 0, "best": None}

        def run(s: float) -> int:
            c, mask = self.rsa(s)
            state["iterations"] += 1
            best = state["best"]
            if best is None or abs(c - target) < abs(best[0] - target):
                state["best"] = (c, s, mask)
            return c

        def done() -> bool:
            return abs(state["best"][0] - target) <= fine or state["iterations"] >= max_iters

        s_lo, s_hi = 0.0, float(max(self.ny, self.nx))
        count = run(s_hi)
        while not done() and count > target and s_hi < 1e12:
            s_lo, s_hi = s_hi, s_hi * 2.0
            count = run(s_hi)
        while not done() and s_hi - s_lo > 1e-12 * s_hi:
            slope = 0.5 * (s_lo + s_hi)
            count = run(slope)
            if count > target:
                s_lo = slope
            else:
                s_hi = slope
        count, slope, mask = state["best"]
        adjusted = 0
        if count < lo_count or count > hi_count:
            self.complete(slope, count, target, mask)
            adjusted, count = target - count, target
        return {"mask": np.frombuffer(bytes(mask), dtype=np.uint8).reshape(self.ny, self.nx), "samples": count,
                "acceleration": n / count, "slope": slope, "iterations": state["iterations"], "adjusted": adjusted}


def _geometry(ny: int, nx: int, calib: tuple[int, int]) -> tuple[np.ndarray, int, np.ndarray]:
    """Exact squared distance from the calibration box as num / den (int64, (ny, nx)), and the box."""
    cy, cx = calib
    ax = np.maximum(np.abs(2 * np.arange(nx, dtype=np.int64) - nx) - cx, 0)
    ay = np.maximum(np.abs(2 * np.arange(ny, dtype=np.int64) - ny) - cy, 0)
    ax_max, ay_max = max(nx - cx, 1), max(ny - cy, 1)
    num = ax[None, :] ** 2 * ay_max ** 2 + ay[:, None] ** 2 * ax_max ** 2
    box = np.zeros((ny, nx), dtype=bool)
    box[(ny - cy) // 2:(ny + cy) // 2, (nx - cx) // 2:(nx + cx) // 2] = True
    return num, ax_max ** 2 * ay_max ** 2, box


def _check_reachable(ny: int, nx: int, calib: tuple[int, int], crop_corner: bool, acceleration: float) -> None:
    """Raises a ValueError naming the reachable range when ``acceleration`` is outside it."""
    num, den, box = _geometry(ny, nx, calib)
    most = int(((num < den) | box).sum()) if crop_corner else ny * nx
    least = max(int(box.sum()), 1)
    target = math.floor(ny * nx / acceleration + 0.5)
    if not least <= target <= most:
        raise ValueError(
            f"poisson mask: acceleration {acceleration} cannot be reached on a ({ny}, {nx}) grid with a "
            f"{calib[0]}x{calib[1]} calibration box{' and cropped corners' if crop_corner else ''}: the reachable "
            f"range is [{ny * nx / most:.4g}, {ny * nx / least:.4g}]")


def poisson_disc(shape: Sequence[int], acceleration: float, calib: int | Sequence[int] = (20, 20), seed: Seed = 0,
                 *, crop_corner: bool = True, tol: float = 0.05, max_iters: int = 64,
                 backend: str = "auto") -> PoissonDiscResult:
    """Variable-density Poisson-disc mask over the last two axes of ``shape`` (ky, kz).

    The achieved acceleration ``N / samples`` is within ``tol`` of the request (or, on grids
    so small that no sample count is, the nearest count), the ``calib`` box is fully sampled,
    and the mask is a pure function of the arguments. ``backend``: ``"auto"`` (compiled when
    the extension is available), ``"compiled"`` or ``"python"`` (identical results, slower).
    Raises ValueError for an acceleration outside the reachable range.
    """
    s = _check_shape(shape, 2, "poisson mask")
    ny, nx = s[-2], s[-1]
    cal = _pair(calib, "poisson mask: calib")
    acc, tol = float(acceleration), float(tol)
    _check_poisson(ny, nx, acc, cal, tol, int(max_iters))
    _check_reachable(ny, nx, cal, crop_corner, acc)
    if backend not in ("auto", "compiled", "python"):
        raise ValueError(f"poisson mask: backend must be 'auto', 'compiled' or 'python', got {backend!r}")
    ext = _extension() if backend != "python" else None
    if backend == "compiled" and ext is None:
        raise RuntimeError("poisson mask: backend='compiled' but the compiled extension is not available")
    args = (ny, nx, acc, cal[0], cal[1], seed64(seed), bool(crop_corner), tol, int(max_iters))
    if ext is not None:
        out = ext.poisson_disc(*args)
    else:
        out = _PythonPoisson(ny, nx, cal, args[5], bool(crop_corner)).sample(acc, tol, int(max_iters))
    return PoissonDiscResult(mask=np.asarray(out["mask"]).astype(bool), samples=int(out["samples"]),
                             acceleration=float(out["acceleration"]), slope=float(out["slope"]),
                             iterations=int(out["iterations"]), adjusted=int(out["adjusted"]))


def _extension():
    from ..ops import _library

    ext = _library.EXTENSION
    return ext if ext is not None and hasattr(ext, "poisson_disc") else None


class PoissonMask2D(MaskFunc):
    """Variable-density Poisson disc over the last two axes (ky, kz), calibration box filled."""

    kind = "poisson"

    def __init__(self, acceleration: float, calib: int | Sequence[int] = (20, 20), crop_corner: bool = True,
                 tol: float = 0.05) -> None:
        self.acceleration = float(acceleration)
        self.calib = _pair(calib, "poisson mask: calib")
        self.crop_corner = bool(crop_corner)
        self.tol = float(tol)
        if not (math.isfinite(self.acceleration) and self.acceleration >= 1.0):
            raise ValueError(f"poisson mask: acceleration must be a finite number >= 1, got {acceleration!r}")
        if not 0.0 < self.tol < 1.0:
            raise ValueError(f"poisson mask: tol must be in (0, 1), got {tol!r}")

    def to_spec(self) -> dict[str, Any]:
        return {"type": self.kind, "acceleration": self.acceleration, "calib": list(self.calib),
                "crop_corner": self.crop_corner, "tol": self.tol}

    def __call__(self, shape: Sequence[int], seed: Seed = None) -> Tensor:
        s = _check_shape(shape, 2, "poisson mask")
        res = poisson_disc(s, self.acceleration, self.calib, seed, crop_corner=self.crop_corner, tol=self.tol)
        m = torch.from_numpy(res.mask.astype(np.float32))
        return m.reshape((1,) * (len(s) - 1) + m.shape)


# ---------------------------------------------------------------------------------------------
# k-t masks for cine

class KtMask(MaskFunc):
    """Variable-density k-t mask for cine data ``S = (T, H, W)``: phase-encode lines along W,
    readout H fully sampled (unless ``partial_echo`` < 1).

    Per frame: ``center_lines`` central lines, plus ``round(W / acceleration) - center_lines``
    outer lines placed at the quantiles ``(j + o_t) / n`` of a density ``(1 - |k|)^vd_power``
    over the outer lines (collisions move to the nearest free line), so every frame has the
    same count. The offset ``o_t`` shifts the pattern per frame: ``o_0 + t * 0.618...``
    (``shift="golden"``, golden-ratio) or uniform random (``shift="random"``); ``o_0`` comes
    from the seed. ``partial_echo`` in [0.5, 1] keeps only the last fraction of each readout.
    """

    kind = "kt"

    def __init__(self, acceleration: float, center_lines: int = 8, shift: str = "golden", vd_power: float = 1.0,
                 partial_echo: float = 1.0) -> None:
        self.acceleration, self.center_lines = float(acceleration), int(center_lines)
        self.shift, self.vd_power, self.partial_echo = shift, float(vd_power), float(partial_echo)
        if not (math.isfinite(self.acceleration) and self.acceleration >= 1.0):
            raise ValueError(f"kt mask: acceleration must be a finite number >= 1, got {acceleration!r}")
        if self.center_lines < 0:
            raise ValueError(f"kt mask: center_lines must be >= 0, got {center_lines!r}")
        if shift not in ("golden", "random"):
            raise ValueError(f"kt mask: shift must be 'golden' or 'random', got {shift!r}")
        if not self.vd_power >= 0.0:
            raise ValueError(f"kt mask: vd_power must be >= 0, got {vd_power!r}")
        if not 0.5 <= self.partial_echo <= 1.0:
            raise ValueError(f"kt mask: partial_echo must be in [0.5, 1], got {partial_echo!r}")

    def to_spec(self) -> dict[str, Any]:
        return {"type": self.kind, "acceleration": self.acceleration, "center_lines": self.center_lines,
                "shift": self.shift, "vd_power": self.vd_power, "partial_echo": self.partial_echo}

    def __call__(self, shape: Sequence[int], seed: Seed = None) -> Tensor:
        s = _check_shape(shape, 3, "kt mask")
        frames, lines, cols = s[-3], s[-2], s[-1]
        per_frame = math.floor(cols / self.acceleration + 0.5)
        if not self.center_lines <= per_frame <= cols or per_frame < 1:
            raise ValueError(f"kt mask: acceleration {self.acceleration} with center_lines={self.center_lines} cannot "
                             f"be reached with W={cols} (it leaves {per_frame} lines per frame)")
        rng = _numpy_rng(seed)
        center = np.zeros(cols, dtype=bool)
        c0 = (cols - self.center_lines + 1) // 2
        center[c0:c0 + self.center_lines] = True
        outer = np.flatnonzero(~center)
        k = np.abs(outer - cols // 2) / (cols // 2 + 1)
        cdf = np.cumsum((1.0 - k) ** self.vd_power)
        cdf /= cdf[-1]
        n_out = per_frame - self.center_lines
        o0 = rng.uniform()
        kt = np.zeros((frames, cols), dtype=bool)
        kt[:, center] = True
        for t in range(frames):
            offset = (o0 + t * _GOLDEN_RATIO) % 1.0 if self.shift == "golden" else rng.uniform()
            taken = np.zeros(outer.size, dtype=bool)
            for q in (np.arange(n_out) + offset) / max(n_out, 1):
                j = min(int(np.searchsorted(cdf, q)), outer.size - 1)
                taken[_nearest_free(taken, j)] = True
            kt[t, outer[taken]] = True
        mask = torch.from_numpy(kt.astype(np.float32)).reshape(1, frames, 1, cols)
        if self.partial_echo < 1.0:
            echo = torch.zeros(1, 1, lines, 1)
            echo[:, :, lines - round(self.partial_echo * lines):] = 1.0
            mask = mask * echo
        return mask.reshape((1,) * (len(s) - 3) + tuple(mask.shape))


def _nearest_free(taken: np.ndarray, j: int) -> int:
    """Index nearest to j (left first on ties) that is not taken yet."""
    for d in range(taken.size):
        for cand in (j - d, j + d):
            if 0 <= cand < taken.size and not taken[cand]:
                return cand
    raise ValueError("kt mask: no free line left (more lines requested than exist)")


# ---------------------------------------------------------------------------------------------
# specs

_KINDS: dict[str, type[MaskFunc]] = {
    "random": RandomMask1D, "equispaced": EquispacedMask1D, "poisson": PoissonMask2D, "kt": KtMask,
    "uniform": UniformMask1D,
}


def mask_from_spec(spec: Mapping[str, Any] | MaskFunc | None) -> MaskFunc | None:
    """Builds a mask function from a spec such as ``{"type": "random", "center_fractions":
    [0.08], "accelerations": [4]}``, ``{"type": "poisson", "acceleration": 8, "calib": 20}`` or
    ``{"type": "kt", "acceleration": 8}``. A MaskFunc or None passes through."""
    if spec is None or isinstance(spec, MaskFunc):
        return spec
    if not isinstance(spec, Mapping) or "type" not in spec:
        raise ValueError(f"mask spec must be a mapping with a 'type' key (one of {sorted(_KINDS)}), got {spec!r}")
    kind = spec["type"]
    if kind not in _KINDS:
        raise ValueError(f"mask spec: unknown type {kind!r}, expected one of {sorted(_KINDS)}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    params = list(inspect.signature(_KINDS[kind]).parameters.values())
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    allowed = [p.name for p in params]
    missing = [k for k in required if k not in kwargs]
    unknown = [k for k in kwargs if k not in allowed]
    if missing or unknown:
        what = "; ".join(([f"missing {missing}"] if missing else []) + ([f"unknown {unknown}"] if unknown else []))
        raise ValueError(f"mask spec for type {kind!r}: {what} (required keys {required}, optional "
                         f"{[k for k in allowed if k not in required]})")
    try:
        return _KINDS[kind](**kwargs)
    except TypeError as exc:
        raise ValueError(f"mask spec for type {kind!r}: {exc} (got keys {sorted(kwargs)})") from exc
