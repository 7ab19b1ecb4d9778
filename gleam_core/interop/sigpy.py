"""The gleam SENSE operator as a ``sigpy.linop.Linop``, on NumPy (CPU) or CuPy (GPU) arrays.

``Sense(maps, mask)`` is a real Linop: ``A(x)``, ``A.H``, ``A.N`` and sigpy's composition all
work, and sigpy's apps run on it unchanged (``sigpy.app.LinearLeastSquares`` and its solvers).
``A.N`` is our fused normal op (no coil stack in memory, readout-decoupled), not ``A.H * A``.

Shapes follow sigpy's ``sigpy.mri.linop.Sense`` (one image, one map set), mapped onto the ops':

=========  ==========================  ======================
array      sigpy (this module)         gleam_core.ops
=========  ==========================  ======================
maps       (C, *S)                     (1, C, 1, *S)
image      (*S)                        (1, 1, *S)
k-space    (C, *S)                     (1, C, *S)
mask       broadcastable to (*S)       (1, 1, *S)
=========  ==========================  ======================

``S`` is (H, W) or (D, H, W); like sigpy, the FFT runs over all of ``S`` unless ``fft_ndim=2``
is given for (T, H, W) cine. The reshapes are views: NumPy and CuPy arrays are shared with
torch, not copied (see :mod:`gleam_core.interop.arrays`).

Weights: ours is ``A = mask * F * maps``; sigpy's ``Sense(maps, weights=w)`` applies ``sqrt(w)``.
So ``Sense(maps, weights=w)`` here equals sigpy's, and ``Sense(maps, mask)`` equals sigpy's with
``weights=mask**2`` (the same for a binary mask).

Needs the ``sigpy`` extra (``pip install "gleam-core[sigpy]"``).
"""

from __future__ import annotations

from typing import Any

try:
    import sigpy as sp
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("gleam_core.interop.sigpy needs sigpy: pip install \"gleam-core[sigpy]\"") from e

from ..ops import SenseOp


class Sense(sp.linop.Linop):
    """``A = mask * F * maps`` from image (*S) to multi-coil k-space (C, *S), as a sigpy Linop.

    Args:
        maps: (C, *S) complex64/complex128 NumPy or CuPy array of sensitivity maps.
        mask: real or bool array broadcastable to (*S) (sampling pattern or k-space weights),
            the same array type as ``maps``; None for no mask. Not with ``weights``.
        weights: sigpy's k-space weights (real, >= 0, broadcastable to (*S)); the operator
            applies ``sqrt(weights)``, as ``sigpy.mri.linop.Sense`` does. Not with ``mask``.
        fft_ndim: axes the FFT transforms, counted from the end; default all of ``S``.
        coil_chunk: coils per batched cuFFT call on GPUs (see :class:`gleam_core.ops.SenseOp`).

    Inputs to ``A``, ``A.H`` and ``A.N`` must have the maps' dtype and array type (sigpy's apps
    make them so); results come back as that array type.

    Raises:
        ValueError: maps not (C, H, W) or (C, D, H, W); both ``mask`` and ``weights`` given;
            complex or negative weights; anything :class:`gleam_core.ops.SenseOp` refuses.
    """

    def __init__(self, maps: Any, mask: Any = None, *, weights: Any = None, fft_ndim: int | None = None,
                 coil_chunk: int | None = None) -> None:
        if not hasattr(maps, "ndim") or maps.ndim not in (3, 4):
            raise ValueError(f"maps must be a (C, H, W) or (C, D, H, W) array (sigpy's Sense convention), got "
                             f"{type(maps).__name__} of shape {getattr(maps, 'shape', None)}")
        xp = sp.get_array_module(maps)
        if mask is not None and weights is not None:
            raise ValueError("give either mask (applied as is) or weights (applied as sqrt(weights), like sigpy), "
                             "not both")
        if weights is not None:
            weights = xp.asarray(weights)
            if weights.dtype.kind not in "biuf":
                raise ValueError(f"weights must be real (sigpy applies their square root), got dtype {weights.dtype}")
            if bool((weights < 0).any()):
                raise ValueError(f"weights must be >= 0 (sigpy applies their square root), got minimum "
                                 f"{float(weights.min())}")
            mask = weights ** 0.5
        elif mask is None:
            mask = xp.ones((1,) * (maps.ndim - 1), dtype=bool)
        else:
            mask = xp.asarray(mask)
        self.mask = mask
        spatial = tuple(maps.shape[1:])
        self._op = SenseOp(maps[None, :, None], mask, fft_ndim=fft_ndim or len(spatial), coil_chunk=coil_chunk)
        super().__init__(oshape=maps.shape, ishape=spatial, repr_str="gleam Sense")

    def _apply(self, input: Any) -> Any:
        return self._op.forward(input[None, None])[0]

    def _adjoint_linop(self) -> sp.linop.Linop:
        return _SenseAdjoint(self)

    def _normal_linop(self) -> sp.linop.Linop:
        return _SenseNormal(self)


class _SenseAdjoint(sp.linop.Linop):
    """``A^H``: k-space (C, *S) -> image (*S)."""

    def __init__(self, sense: Sense) -> None:
        self._sense = sense
        super().__init__(oshape=sense.ishape, ishape=sense.oshape, repr_str="gleam Sense.H")

    def _apply(self, input: Any) -> Any:
        return self._sense._op.adjoint(input[None])[0, 0]

    def _adjoint_linop(self) -> sp.linop.Linop:
        return self._sense


class _SenseNormal(sp.linop.Linop):
    """``A^H A``, fused: image (*S) -> image (*S); self-adjoint."""

    def __init__(self, sense: Sense) -> None:
        self._sense = sense
        super().__init__(oshape=sense.ishape, ishape=sense.ishape, repr_str="gleam Sense.N")

    def _apply(self, input: Any) -> Any:
        return self._sense._op.normal(input[None, None])[0, 0]

    def _adjoint_linop(self) -> sp.linop.Linop:
        return self


class L1WaveletRecon(sp.app.LinearLeastSquares):
    """``sigpy.mri.app.L1WaveletRecon`` on the gleam operator:
    ``min_x 1/2 ||A x - mask * y||^2 + lamda ||W x||_1`` with ``A = Sense(maps, mask)``.

    sigpy's class builds its own Sense from ``mps`` and takes no Linop, so this is the same app
    assembled from sigpy's public building blocks (``sigpy.linop.Wavelet``, ``sigpy.prox``,
    ``sigpy.app.LinearLeastSquares``) around our ``Sense``; with the same arguments it follows
    sigpy's iterates.

    Args:
        y: (C, *S) k-space, the maps' dtype and array type.
        maps: (C, *S) sensitivity maps.
        lamda: weight of the wavelet l1 term.
        mask, weights: as for :class:`Sense`; with neither, the mask is where ``y`` is nonzero
            (sigpy's estimate).
        wave_name: PyWavelets wavelet name.
        **kwargs: passed to ``sigpy.app.LinearLeastSquares`` (``max_iter``, ``solver``, ``show_pbar``, ...).
    """

    def __init__(self, y: Any, maps: Any, lamda: float, mask: Any = None, *, weights: Any = None,
                 wave_name: str = "db4", fft_ndim: int | None = None, coil_chunk: int | None = None,
                 **kwargs: Any) -> None:
        if mask is None and weights is None:
            mask = sp.rss(y, axes=(0,)) > 0
        A = Sense(maps, mask, weights=weights, fft_ndim=fft_ndim, coil_chunk=coil_chunk)
        xp = sp.get_array_module(y)
        y = y * xp.asarray(A.mask, dtype=y.real.dtype)  # the data term sees mask * y, as sigpy's does
        W = sp.linop.Wavelet(A.ishape, wave_name=wave_name)
        proxg = sp.prox.UnitaryTransform(sp.prox.L1Reg(W.oshape, lamda), W)

        def g(x: Any) -> float:
            device = sp.get_device(x)
            with device:
                return lamda * device.xp.sum(device.xp.abs(W(x))).item()

        super().__init__(A, y, proxg=proxg, g=g, **kwargs)
