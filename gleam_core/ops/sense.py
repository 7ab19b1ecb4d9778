"""Typed, validated entry points to the SENSE operators and data-consistency ops.

Conventions (see README): image ``x (B, M, *S)``, maps ``(B, C, M, *S)``, k-space
``(B, C, *S)``, mask real or bool broadcastable to ``(B, 1, *S)``, all complex data
complex64 or complex128. ``S`` is (H, W), (D, H, W) or (T, H, W); the FFT runs over the
last ``fft_ndim`` axes (cine: ``fft_ndim=2``, maps may have size 1 along T). The FFT is
centered and orthonormal (fastMRI's ``fft2c``). A = mask * F * maps; the adjoint applies the
mask too, so the normal op applies mask**2 (identical for binary masks).

Readout decoupling: axes along which the mask is constant (size 1, or detected constant
for CPU masks in eager mode) need no FFT in the normal and data-consistency ops; the
result is the same as the full computation. Pass ``decouple=False`` to force full FFTs.
Masks built by ``gleam_core.data`` already have size 1 on such axes, which also lets the
GPU path skip the FFT without inspecting mask values.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import torch
from torch import Tensor

from ..interop.arrays import accepts_arrays
from . import _checks, _library, reference


class CGResult(NamedTuple):
    """Solution of ``(A^H A + lam I) x = b``, the relative residual ``||r_b|| / ||b_b||`` (B,)
    and the iterations each batch element ran (B,) (int64).

    ``r_b`` is CG's recursively updated residual (what the stopping test uses), which tracks
    the true ``b - (A^H A + lam I) x`` down to about the precision's rounding (~1e-6 relative
    in complex64). An element with ``b_b = 0`` returns ``x_b = 0`` (exact), residual 0, 0
    iterations, whatever ``x0`` was."""

    x: Tensor
    residual: Tensor
    iterations: Tensor


def _compact_constant_axes(mask: Tensor, spatial_axes: list[int]) -> Tensor:
    """Shrinks to size 1 the given axes along which the mask does not vary."""
    if mask.device.type != "cpu" or mask.requires_grad or torch.compiler.is_compiling():
        return mask  # value checks would synchronize a GPU or break a compiled graph
    for axis in spatial_axes:
        if mask.shape[axis] > 1:
            first = mask.narrow(axis, 0, 1)
            if torch.equal(mask, first.expand_as(mask)):
                mask = first.contiguous()
    return mask


class SenseOp:
    """The multi-coil SENSE operator ``A = mask * F * maps`` of one batch.

    Args:
        maps: (B, C, M, *S) complex64/complex128 sensitivity maps (B may be 1 to share maps).
        mask: bool or real, broadcastable to (B, 1, *S): sampling pattern or k-space weights.
        fft_ndim: 2 or 3, the number of trailing spatial axes the FFT transforms.
        coil_chunk: coils per batched cuFFT call on GPUs (memory bound: one chunk of coil
            images); None picks automatically; the CPU kernels work on 8 coils at a time.
        decouple: skip FFTs along axes where the mask is constant (same result, faster).

    Building the operator validates maps and mask once; its methods then only check the
    data argument, which makes it the cheap way to apply A many times (unrolled networks).
    """

    @accepts_arrays
    def __init__(self, maps: Tensor, mask: Tensor, *, fft_ndim: int = 2, coil_chunk: int | None = None,
                 decouple: bool = True) -> None:
        maps = _checks.check_tensor("maps", maps)
        _checks.check_complex("maps", maps)
        spatial_ndim = maps.dim() - 3
        _checks.check_fft_ndim(fft_ndim, spatial_ndim)
        if coil_chunk is not None and (not isinstance(coil_chunk, int) or coil_chunk < 1):
            raise ValueError(f"coil_chunk must be a positive int or None, got {coil_chunk!r}")
        self.fft_ndim = fft_ndim
        self.spatial_ndim = spatial_ndim
        self.coil_chunk = coil_chunk or 0
        self.maps = maps if maps.requires_grad else maps.contiguous()
        mask = _checks.canonical_mask(mask, spatial_ndim, _checks.real_dtype(maps.dtype), maps.device)
        # Check against the maps now: after compaction a wrong-size constant mask would broadcast.
        maps_spatial = tuple(maps.shape[3:])
        for a, (k, n) in enumerate(zip(mask.shape[2:], maps_spatial)):
            if n > 1 and k not in (1, n):
                raise ValueError(f"mask spatial shape {tuple(mask.shape[2:])} does not broadcast to the maps' spatial "
                                 f"shape {maps_spatial} (axis {a}: {k} vs {n})")
        self.fft_dims = list(range(-fft_ndim, 0))
        if decouple:
            mask = _compact_constant_axes(mask, [mask.dim() + d for d in self.fft_dims])
            self.normal_dims = [d for d in self.fft_dims if mask.shape[d] > 1]
        else:
            self.normal_dims = list(self.fft_dims)
        self.mask = mask
        # Gradients w.r.t. maps or mask are only available through the reference path.
        self.use_reference = maps.requires_grad or mask.requires_grad

    @property
    def coils(self) -> int:
        return self.maps.shape[1]

    @property
    def sets(self) -> int:
        return self.maps.shape[2]

    def _check(self, name: str, t: Tensor, kind: str) -> Tensor:
        t = _checks.check_tensor(name, t)
        _checks.check_complex(name, t)
        _checks.check_same_kind(name, t, "maps", self.maps)
        lead, lead_name = (self.sets, "map sets M") if kind == "image" else (self.coils, "coils C")
        expected = "(B, M, *S)" if kind == "image" else "(B, C, *S)"
        if t.dim() != 2 + self.spatial_ndim or t.shape[1] != lead:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {expected} with {lead_name}={lead} and "
                             f"{self.spatial_ndim} spatial axes (maps {tuple(self.maps.shape)})")
        batch, spatial = t.shape[0], tuple(t.shape[2:])
        if self.maps.shape[0] not in (1, batch):
            raise ValueError(f"{name} batch size {batch} does not match maps batch size {self.maps.shape[0]}")
        for a, (nm, n) in enumerate(zip(self.maps.shape[3:], spatial)):
            transformed = a >= self.spatial_ndim - self.fft_ndim
            if nm != n and not (nm == 1 and a == 0 and not transformed):
                raise ValueError(f"{name} spatial shape {spatial} does not match maps spatial shape "
                                 f"{tuple(self.maps.shape[3:])} (only a leading non-FFT axis such as cine "
                                 "frames may have size 1 in maps)")
        _checks.check_mask_fits(self.mask, batch, spatial, name)
        return t if t.requires_grad and self.use_reference else t.contiguous()

    @accepts_arrays
    def forward(self, x: Tensor) -> Tensor:
        """A x: (B, M, *S) image -> (B, C, *S) masked k-space."""
        x = self._check("x", x, "image")
        if self.use_reference:
            return reference.sense_forward(x, self.maps, self.mask, self.fft_dims)
        return torch.ops.gleam.sense_forward(x, self.maps, self.mask, self.fft_dims, self.coil_chunk)

    @accepts_arrays
    def adjoint(self, y: Tensor) -> Tensor:
        """A^H y: (B, C, *S) k-space -> (B, M, *S) coil-combined image (the mask is applied)."""
        y = self._check("y", y, "kspace")
        if self.use_reference:
            return reference.sense_adjoint(y, self.maps, self.mask, self.fft_dims)
        return torch.ops.gleam.sense_adjoint(y, self.maps, self.mask, self.fft_dims, self.coil_chunk)

    @accepts_arrays
    def normal(self, x: Tensor) -> Tensor:
        """A^H A x, fused and readout-decoupled: (B, M, *S) -> (B, M, *S)."""
        x = self._check("x", x, "image")
        if self.use_reference:
            return reference.sense_normal(x, self.maps, self.mask, self.fft_dims)
        return torch.ops.gleam.sense_normal(x, self.maps, self.mask, self.normal_dims, self.coil_chunk)

    @accepts_arrays
    def gradient_step(self, x: Tensor, step: float | Tensor, *, y: Tensor | None = None,
                      ahy: Tensor | None = None) -> Tensor:
        """``x - step * A^H (A x - y)``, fused; give ``ahy = A^H y`` to reuse it across unrolls.

        ``step`` is a float or a real tensor of shape () or (B,); differentiable in x, step, ahy/y.
        """
        x = self._check("x", x, "image")
        if (y is None) == (ahy is None):
            raise ValueError("gradient_step needs exactly one of y (k-space) or ahy (= A^H y)")
        ahy = self.adjoint(y) if ahy is None else self._check("ahy", ahy, "image")
        step_t = _checks.per_batch_param("step", step, x.shape[0], self.mask.dtype, x.device)
        if self.use_reference:
            return reference.dc_gradient_step(x, ahy, self.maps, self.mask, step_t, self.fft_dims)
        return torch.ops.gleam.dc_gradient_step(x, ahy, self.maps, self.mask, step_t, self.normal_dims,
                                                self.coil_chunk)

    @accepts_arrays
    def cg(self, b: Tensor, lam: float | Tensor, x0: Tensor | None = None, iters: int = 10,
           tol: float = 0.0) -> CGResult:
        """Solves ``(A^H A + lam I) x = b`` by batched conjugate gradients.

        Each batch element stops on its own once ``||r|| <= tol * ||b||`` (tol > 0). The backward
        pass is one more CG solve (implicit differentiation), so memory does not grow with
        ``iters``; gradients flow to ``b`` and ``lam`` (not to ``x0``).
        """
        b = self._check("b", b, "image")
        if x0 is not None:
            x0 = self._check("x0", x0, "image")
            if x0.shape != b.shape:
                raise ValueError(f"x0 has shape {tuple(x0.shape)}, expected {tuple(b.shape)} like b")
        if not isinstance(iters, int) or iters < 0:
            raise ValueError(f"iters must be a non-negative int, got {iters!r}")
        if not isinstance(tol, numbers.Real) or not tol >= 0:
            raise ValueError(f"tol must be a non-negative float, got {tol!r}")
        lam_t = _checks.per_batch_param("lam", lam, b.shape[0], self.mask.dtype, b.device)
        # Checked where it costs no device sync; NaN would pass a plain `lam < 0` test.
        if lam_t.device.type == "cpu" and not torch.compiler.is_compiling() and \
                not bool((torch.isfinite(lam_t) & (lam_t >= 0)).all()):
            raise ValueError(f"lam must be finite and >= 0 (A^H A + lam I must be positive semi-definite), "
                             f"got {lam_t.tolist()}")
        if self.use_reference:
            return CGResult(*reference.cg_solve(b, self.maps, self.mask, lam_t, x0, self.fft_dims, iters, float(tol)))
        x0c = None if x0 is None else x0.detach()
        return CGResult(*torch.ops.gleam.cg_solve(b, self.maps, self.mask, lam_t, x0c, self.normal_dims, iters,
                                                  float(tol), self.coil_chunk))


@accepts_arrays
def sense_forward(x: Tensor, maps: Tensor, mask: Tensor, *, fft_ndim: int = 2, coil_chunk: int | None = None) -> Tensor:
    """A x = mask * F(maps * x): x (B, M, *S) -> k-space (B, C, *S). See :class:`SenseOp`."""
    return SenseOp(maps, mask, fft_ndim=fft_ndim, coil_chunk=coil_chunk).forward(x)


@accepts_arrays
def sense_adjoint(y: Tensor, maps: Tensor, mask: Tensor, *, fft_ndim: int = 2, coil_chunk: int | None = None) -> Tensor:
    """A^H y = sum_c conj(maps_c) F^H(mask * y_c): k-space (B, C, *S) -> image (B, M, *S)."""
    return SenseOp(maps, mask, fft_ndim=fft_ndim, coil_chunk=coil_chunk).adjoint(y)


@accepts_arrays
def sense_normal(x: Tensor, maps: Tensor, mask: Tensor, *, fft_ndim: int = 2, coil_chunk: int | None = None,
                 decouple: bool = True) -> Tensor:
    """A^H A x, fused (no coil stack in memory) and readout-decoupled: (B, M, *S) -> (B, M, *S)."""
    return SenseOp(maps, mask, fft_ndim=fft_ndim, coil_chunk=coil_chunk, decouple=decouple).normal(x)


@accepts_arrays
def dc_gradient_step(x: Tensor, y: Tensor, maps: Tensor, mask: Tensor, step: float | Tensor, *, fft_ndim: int = 2,
                     coil_chunk: int | None = None, ahy: Tensor | None = None, decouple: bool = True) -> Tensor:
    """Gradient-step data consistency ``x - step * A^H(A x - y)``, fused; differentiable in x and step.

    ``ahy`` (= A^H y) may be passed to skip recomputing it; then ``y`` may be None.
    """
    op = SenseOp(maps, mask, fft_ndim=fft_ndim, coil_chunk=coil_chunk, decouple=decouple)
    return op.gradient_step(x, step, y=None if ahy is not None else y, ahy=ahy)


@accepts_arrays
def dc_cg(b: Tensor, maps: Tensor, mask: Tensor, lam: float | Tensor, x0: Tensor | None = None, iters: int = 10,
          tol: float = 0.0, *, fft_ndim: int = 2, coil_chunk: int | None = None, decouple: bool = True) -> CGResult:
    """Batched CG for ``(A^H A + lam I) x = b`` with implicit-differentiation backward. See :meth:`SenseOp.cg`."""
    op = SenseOp(maps, mask, fft_ndim=fft_ndim, coil_chunk=coil_chunk, decouple=decouple)
    return op.cg(b, lam, x0=x0, iters=iters, tol=tol)


def backend() -> dict[str, str]:
    """Which implementation serves each device: ``{"cpu": "compiled"|"reference ...", "cuda": ...}``.

    A reference entry says why when the compiled ops are missing, e.g.
    ``"reference (compiled build failed: <the compiler's first error>)"`` or
    ``"reference (GLEAM_NO_EXT=1)"``; a plain ``"reference"`` means the extension was built
    without kernels for that device (CUDA kernels on a CPU-only torch)."""
    return dict(_library.BACKEND)
