"""Synthetic anatomy-like phantoms and coil sensitivities (torch, deterministic per seed).

Every anatomy is a 3D scene of soft-edged superellipsoids with random sizes, positions,
orientations and low-frequency boundary deformations, painted in order with tissue values
that carry smooth intensity variation and texture (band-limited random fields: trabecular
bone, muscle striation, folded cortex). It is evaluated on any grid of normalized coordinates
(x, y, z in [-1, 1): x along W, y along H), so a 2D slice is an exact cross-section of the
same volume that a 3D item renders. Images are complex: magnitude times a smooth background
phase. Coil sensitivities come from a ring (or two rings) of loop coils around the anatomy,
birdcage-like: magnitude falling off with distance, phase winding around each coil,
normalized so sum_c |s_c|^2 = 1 everywhere (smooth, no phase singularities).

Anatomies: ``knee`` (soft tissue, fat, femur/tibia with cortex and trabecular marrow,
cartilage, joint fluid, ligaments, vessels), ``brain`` (scalp, skull, CSF, folded gray
matter with sulci, white matter, ventricles, deep nuclei, falx, small lesions) and ``heart``
(torso, lungs, spine, beating left and right ventricles with papillary muscles) whose cardiac
phase makes cine frames move periodically.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

Coords = tuple[Tensor, Tensor, Tensor]


def grid_coords(shape: tuple[int, ...], z: float | None = None, dtype: torch.dtype = torch.float32) -> Coords:
    """Normalized coordinates of a grid: (H, W) at slice position ``z``, or a volume (D, H, W)
    with D along y (the readout of the 3D knee), H along z and W along x; index i of an axis of
    size n sits at (i - n/2) / (n/2)."""
    def axis(n: int) -> Tensor:
        return (torch.arange(n, dtype=dtype) - n / 2) / (n / 2)

    if len(shape) == 2:
        h, w = shape
        y, x = axis(h).reshape(h, 1), axis(w).reshape(1, w)
        return x, y, torch.full((1, 1), 0.0 if z is None else float(z), dtype=dtype)
    d, h, w = shape
    return axis(w).reshape(1, 1, w), axis(d).reshape(d, 1, 1), axis(h).reshape(1, h, 1)


class RandomField:
    """Band-limited random field: a sum of ``k`` cosines with random directions (scaled per axis by
    ``aniso``), frequencies in [fmin, fmax] cycles per unit and phases; standard deviation ~``amp``."""

    def __init__(self, rng: np.random.Generator, k: int, fmin: float, fmax: float, amp: float,
                 aniso: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> None:
        dirs = rng.normal(size=(k, 3)) * np.asarray(aniso)
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True) + 1e-12
        self.freqs = (dirs * rng.uniform(fmin, fmax, size=(k, 1)) * 2 * math.pi).tolist()
        self.phases = rng.uniform(0, 2 * math.pi, size=k).tolist()
        self.amp = amp * math.sqrt(2.0 / k)

    def __call__(self, c: Coords) -> Tensor:
        x, y, z = c
        out = torch.zeros(torch.broadcast_shapes(x.shape, y.shape, z.shape), dtype=x.dtype)
        for (fx, fy, fz), ph in zip(self.freqs, self.phases):
            out += torch.cos(fx * x + fy * y + fz * z + ph)
        return out * self.amp


@dataclass
class Blob:
    """Superellipsoid ``sum |u_i / r_i|^p = 1`` around ``center`` after rotation ``rot``, with its
    radius perturbed by ``deform`` (a RandomField or None)."""

    center: tuple[float, float, float]
    radii: tuple[float, float, float]
    rot: np.ndarray
    power: float = 2.0
    deform: RandomField | None = None

    def grown(self, delta: float, deform: RandomField | None = None) -> "Blob":
        """The same shape with every radius changed by ``delta`` (negative shrinks)."""
        radii = tuple(max(r + delta, 1e-3) for r in self.radii)
        return Blob(self.center, radii, self.rot, self.power, deform or self.deform)

    def level(self, c: Coords) -> Tensor:
        """Approximate signed distance (negative inside) in normalized units."""
        x, y, z = (t - o for t, o in zip(c, self.center))
        r = self.rot
        u = [r[0, i] * x + r[1, i] * y + r[2, i] * z for i in range(3)]
        rho = sum((ui / ri).abs().clamp_min(1e-12) ** self.power for ui, ri in zip(u, self.radii)) ** (1 / self.power)
        if self.deform is not None:
            rho = rho - self.deform(c)
        return (rho - 1.0) * min(self.radii)


def rotation_matrix(ax: float, ay: float, az: float) -> np.ndarray:
    """Rotation by the given angles (radians) about x, then y, then z."""
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def rotation(rng: np.random.Generator, max_deg: tuple[float, float, float], base_deg: float = 0.0) -> np.ndarray:
    """Random rotation with angles about x, y, z uniform in +-max_deg (z offset by ``base_deg``)."""
    ax, ay, az = (math.radians(rng.uniform(-m, m)) for m in max_deg)
    return rotation_matrix(ax, ay, az + math.radians(base_deg))


class Painter:
    """Paints tissues in order: ``img = img * (1 - m) + value * m`` with soft memberships m."""

    def __init__(self, coords: Coords, edge: float) -> None:
        self.c = coords
        self.edge = edge
        shape = torch.broadcast_shapes(*(t.shape for t in coords))
        self.img = torch.zeros(shape, dtype=coords[0].dtype)

    def inside(self, *blobs: Blob) -> Tensor:
        """Soft membership of the union of ``blobs``."""
        level = torch.stack(torch.broadcast_tensors(*(b.level(self.c) for b in blobs))).amin(0)
        return torch.sigmoid(-level / self.edge)

    def paint(self, m: Tensor, value: float | Tensor) -> None:
        self.img = self.img * (1 - m) + value * m


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _blob(rng: np.random.Generator, center, radii, jitter: float = 0.03, scale_jitter: float = 0.08,
          max_deg=(8.0, 8.0, 8.0), power: float = 2.0, deform_amp: float = 0.03) -> Blob:
    c = tuple(v + _u(rng, -jitter, jitter) for v in center)
    r = tuple(v * (1 + _u(rng, -scale_jitter, scale_jitter)) for v in radii)
    deform = RandomField(rng, 8, 0.3, 1.5, deform_amp) if deform_amp > 0 else None
    return Blob(c, r, rotation(rng, max_deg), power, deform)


def knee(rng: np.random.Generator, c: Coords, edge: float, phase: float = 0.0) -> Tensor:
    """Knee magnitude image: leg along y (superior-inferior), x left-right, z anterior-posterior."""
    p = Painter(c, edge)
    tex = RandomField(rng, 24, 2.0, 6.0, 0.05)
    leg = _blob(rng, (0.0, 0.0, 0.0), (0.8, 4.0, 0.72), power=2.3)
    p.paint(p.inside(leg), 0.9 * (1 + tex(c)))                              # subcutaneous fat
    muscle = leg.grown(-0.07, RandomField(rng, 8, 0.5, 2.0, 0.03))
    striation = RandomField(rng, 16, 4.0, 9.0, 0.12, aniso=(1.0, 0.15, 1.0))
    p.paint(p.inside(muscle), 0.42 * (1 + striation(c) + tex(c)))
    septa = RandomField(rng, 12, 1.0, 3.0, 1.0)                              # thin fat septa in muscle
    p.paint(p.inside(muscle) * torch.sigmoid((0.06 - septa(c).abs()) / 0.015), 0.85)
    for side in (-1, 1):                                                     # popliteal vessels
        vessel = _blob(rng, (0.08 * side, 0.0, 0.45), (0.035, 3.0, 0.035), jitter=0.02, deform_amp=0.0)
        p.paint(p.inside(vessel), 0.95 if side < 0 else 0.2)
    femur = [_blob(rng, (0.0, -0.8, 0.0), (0.2, 0.8, 0.2), jitter=0.02),
             _blob(rng, (-0.18, -0.06, 0.0), (0.2, 0.2, 0.26), jitter=0.02),
             _blob(rng, (0.18, -0.06, 0.0), (0.2, 0.2, 0.26), jitter=0.02)]
    tibia = [_blob(rng, (0.0, 0.3, 0.0), (0.4, 0.14, 0.3), jitter=0.02, power=2.6),
             _blob(rng, (0.0, 0.9, 0.02), (0.22, 0.7, 0.22), jitter=0.02)]
    for _ in range(int(rng.integers(1, 4))):                                 # joint fluid pockets
        fluid = _blob(rng, (_u(rng, -0.3, 0.3), 0.1, _u(rng, -0.25, 0.25)), (0.06, 0.03, 0.05), deform_amp=0.1)
        p.paint(p.inside(fluid), 1.0)
    cart_val = 0.58 * (1 + RandomField(rng, 12, 3.0, 8.0, 0.04)(c))
    joint = torch.sigmoid((0.2 - (c[1] - 0.1).abs()) / 0.03)                 # cartilage only near the joint
    p.paint(p.inside(*(b.grown(0.045) for b in femur[1:])) * joint, cart_val)
    p.paint(p.inside(tibia[0].grown(0.04)) * joint, cart_val)
    for side in (-1, 1):                                                     # cruciate ligaments
        lig = Blob((0.02 * side, 0.08, 0.05 * side), (0.025, 0.16, 0.025), rotation(rng, (5, 5, 5), 35.0 * side))
        p.paint(p.inside(lig), 0.12)
    trab = RandomField(rng, 32, 10.0, 20.0, 1.0)
    for bone in (femur, tibia):
        p.paint(p.inside(*bone), 0.06)                                       # cortex
        p.paint(p.inside(*(b.grown(-0.022) for b in bone)), 0.7 * (0.75 + 0.45 * torch.sigmoid(4 * trab(c))))
    return p.img


def brain(rng: np.random.Generator, c: Coords, edge: float, phase: float = 0.0) -> Tensor:
    """Brain magnitude image (T2-like): axial slices in (x, y), z superior-inferior."""
    p = Painter(c, edge)
    tex = RandomField(rng, 24, 2.0, 7.0, 0.04)
    head = _blob(rng, (0.0, 0.03, 0.0), (0.7, 0.86, 0.8), max_deg=(4, 4, 6), deform_amp=0.015)
    p.paint(p.inside(head), 0.85 * (1 + tex(c)))                             # scalp
    p.paint(p.inside(head.grown(-0.035)), 0.06)                              # skull
    p.paint(p.inside(head.grown(-0.085)), 1.0)                               # CSF
    gyri = RandomField(rng, 24, 3.0, 7.0, 0.035)
    gm = head.grown(-0.1, gyri)
    p.paint(p.inside(gm), 0.62 * (1 + tex(c)))
    sulci = RandomField(rng, 16, 2.0, 5.0, 1.0)
    p.paint(p.inside(gm) * (1 - p.inside(head.grown(-0.17))) * torch.sigmoid((0.05 - sulci(c).abs()) / 0.012), 1.0)
    wm = head.grown(-0.17, RandomField(rng, 24, 3.0, 7.0, 0.06))
    p.paint(p.inside(wm), 0.42 * (1 + 0.6 * tex(c)))
    falx = Blob((0.0, -0.3, 0.2), (0.008, 0.5, 0.6), rotation(rng, (0, 0, 3)), 2.0, None)
    p.paint(p.inside(falx), 0.15)
    for side in (-1, 1):
        nucleus = _blob(rng, (0.2 * side, 0.0, 0.0), (0.08, 0.12, 0.1), deform_amp=0.05)
        p.paint(p.inside(nucleus), 0.55)
        ventricle = _blob(rng, (0.08 * side, -0.05, 0.05), (0.06, 0.22, 0.12), max_deg=(5, 5, 15), deform_amp=0.08)
        p.paint(p.inside(ventricle), 1.0)
    for _ in range(int(rng.integers(3, 7))):                                 # small lesions
        r = _u(rng, 0.015, 0.04)
        lesion = _blob(rng, (_u(rng, -0.4, 0.4), _u(rng, -0.5, 0.5), _u(rng, -0.4, 0.4)), (r, r, r), deform_amp=0.0)
        p.paint(p.inside(lesion) * p.inside(wm), 0.85)
    return p.img


def heart(rng: np.random.Generator, c: Coords, edge: float, phase: float = 0.0) -> Tensor:
    """Short-axis chest image; ``phase`` in [0, 1) is the cardiac phase (periodic motion)."""
    contraction = 0.5 * (1 - math.cos(2 * math.pi * phase))                  # 0 diastole .. 1 systole
    p = Painter(c, edge)
    tex = RandomField(rng, 24, 2.0, 7.0, 0.05)
    torso = _blob(rng, (0.0, 0.05, 0.0), (0.88, 0.62, 5.0), max_deg=(0, 0, 4), power=2.4)
    p.paint(p.inside(torso), 0.85 * (1 + tex(c)))
    p.paint(p.inside(torso.grown(-0.05)), 0.38 * (1 + tex(c)))
    vessels = RandomField(rng, 20, 3.0, 8.0, 1.0)
    for side in (-1, 1):
        lung = _blob(rng, (0.45 * side, -0.02, 0.0), (0.26, 0.34, 5.0), max_deg=(0, 0, 10), deform_amp=0.05)
        p.paint(p.inside(lung), 0.04 + 0.3 * torch.sigmoid((vessels(c) - 1.6) / 0.1))
    spine = _blob(rng, (0.0, 0.47, 0.0), (0.09, 0.08, 5.0), deform_amp=0.02)
    p.paint(p.inside(spine), 0.3)
    p.paint(p.inside(spine.grown(-0.045)), 0.7)
    hx, hy = 0.08 + _u(rng, -0.03, 0.03), -0.05 + _u(rng, -0.03, 0.03) + 0.01 * contraction
    rb0, wall = _u(rng, 0.11, 0.14), _u(rng, 0.06, 0.08)
    rb = rb0 * (1 - 0.28 * contraction)
    rm = math.sqrt(rb ** 2 + (rb0 + wall) ** 2 - rb0 ** 2)                   # myocardial area conserved
    rot = rotation(rng, (0, 0, 20))
    peri = Blob((hx, hy, 0.0), (rm + 0.04, (rm + 0.04) * 1.05, 5.0), rot, 2.0, RandomField(rng, 8, 0.5, 2.0, 0.05))
    p.paint(p.inside(peri) * (1 - p.inside(peri.grown(-0.025))), 0.8)
    rv = Blob((hx - 1.1 * (rb0 + wall), hy - 0.02, 0.0),
              (0.17 * (1 - 0.2 * contraction), 0.22 * (1 - 0.15 * contraction), 5.0), rot, 2.0, None)
    p.paint(p.inside(rv), 0.9)
    myo_tex = RandomField(rng, 16, 4.0, 9.0, 0.06)
    p.paint(p.inside(Blob((hx, hy, 0.0), (rm, rm * 1.05, 5.0), rot, 2.0, None)), 0.32 * (1 + myo_tex(c)))
    p.paint(p.inside(Blob((hx, hy, 0.0), (rb, rb * 1.05, 5.0), rot, 2.0, None)), 0.95)
    for ang in (0.8, 2.4):                                                   # papillary muscles
        r = 0.7 * rb
        pap = Blob((hx + r * math.cos(ang), hy + r * math.sin(ang), 0.0), (0.022 * (1 + 0.3 * contraction),) * 2 + (5.0,),
                   np.eye(3), 2.0, None)
        p.paint(p.inside(pap), 0.32)
    return p.img


ANATOMIES: dict[str, Callable[..., Tensor]] = {"knee": knee, "brain": brain, "heart": heart}


@dataclass
class CoilArray:
    """Loop coils at ``positions`` (C, 3) with unit ``tangents`` (C, 3) along their ring.

    Magnitude ``(1 + d^2 / falloff^2)^-3/4`` of the distance d to the coil; phase
    ``offset + 1.5 * (p - p_c).t_c / (|p - p_c| + falloff)``, which turns around the coil like a
    loop's field but stays smooth (no phase vortex) even where a coil sits inside the grid.
    """

    positions: np.ndarray
    tangents: np.ndarray
    falloff: np.ndarray
    offsets: np.ndarray

    @staticmethod
    def ring(rng: np.random.Generator, coils: int, axis: int, radius: tuple[float, float], heights: int = 1
             ) -> "CoilArray":
        """``coils`` coils on ``heights`` elliptical rings (radii ``radius``) around ``axis`` (0, 1, 2 = x, y, z)."""
        per_ring = math.ceil(coils / heights)
        plane = [i for i in range(3) if i != axis]
        pos, tan = np.zeros((coils, 3)), np.zeros((coils, 3))
        for c in range(coils):
            ring, k = divmod(c, per_ring)
            ang = 2 * math.pi * k / per_ring + rng.uniform(-0.15, 0.15) + (math.pi / per_ring) * ring
            pos[c, axis] = 0.0 if heights == 1 else (ring / (heights - 1) - 0.5) * 0.7
            pos[c, plane[0]], pos[c, plane[1]] = radius[0] * math.cos(ang), radius[1] * math.sin(ang)
            tan[c, plane[0]], tan[c, plane[1]] = -math.sin(ang), math.cos(ang)
        return CoilArray(pos, tan, rng.uniform(0.45, 0.7, size=coils), rng.uniform(-math.pi, math.pi, size=coils))

    def __call__(self, c: Coords) -> Tensor:
        """Normalized complex sensitivities (C, *grid), complex64."""
        maps = []
        for pos, tan, fall, off in zip(self.positions, self.tangents, self.falloff, self.offsets):
            d = [t - float(o) for t, o in zip(c, pos)]
            dist = (d[0] ** 2 + d[1] ** 2 + d[2] ** 2).sqrt()
            mag = (1 + (dist / float(fall)) ** 2) ** -0.75
            along = d[0] * float(tan[0]) + d[1] * float(tan[1]) + d[2] * float(tan[2])
            maps.append(torch.polar(mag.to(torch.float32), (1.5 * along / (dist + float(fall)) + float(off)).to(
                torch.float32)))
        s = torch.stack(torch.broadcast_tensors(*maps))
        return s / s.abs().pow(2).sum(0, keepdim=True).sqrt()


def background_phase(rng: np.random.Generator, c: Coords) -> Tensor:
    """Smooth phase (radians): a random tilt plus a low-frequency field."""
    tilt = rng.uniform(-0.6, 0.6, size=3)
    return tilt[0] * c[0] + tilt[1] * c[1] + tilt[2] * c[2] + RandomField(rng, 8, 0.2, 0.8, 0.6)(c)
