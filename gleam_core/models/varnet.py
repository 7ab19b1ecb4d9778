"""E2E-VarNet (Sriram et al., "End-to-End Variational Networks for Accelerated MRI
Reconstruction", MICCAI 2020) as an unrolled network of this engine.

The network works on multi-coil k-space. From the undersampled k-space ``y`` (B, C, *S) and its
mask, a sensitivity network (:class:`~gleam_core.models.sensitivity.SensitivityNet`) estimates
maps ``S`` (B, C, M, *S) from the ACS region; then each of U cascades updates the k-space

    k <- k - eta * mask * (k - y) - E(NormUnet(R(k)))

with a learned soft data-consistency weight ``eta`` (initial 1, as in the paper), the SENSE
expand ``E(x) = F(S x)`` (``sense_forward`` with no mask) and reduce ``R(k) = sum_c conj(S_c)
F^H k_c`` (``sense_adjoint``), both compiled and differentiable in the learned maps.

The output: the paper's is the RSS magnitude of the final coil images, which needs no maps.
This engine's targets, losses and metrics are complex images in the phase convention of the
data's maps (``problem.op.maps``), so the output is the final k-space combined with those maps,
``sum_c conj(S_data_c) F^H k_c`` (B, M, *S). Combining with the learned maps instead cannot
work: coil images only determine the maps up to a per-pixel phase shared with the image, so a
complex loss against the target's phase convention cannot be met (measured: the loss stalled
at about twice PGD's on the synthetic knee data).

How it fits the engine's unrolled chains: the state passed between unrolls (and between GLEAM
modules) is one complex tensor (B, C, 1 + M, *S) holding the k-space (``[:, :, 0]``) and the
maps (``[:, :, 1:]``). The chain starts from the masked k-space (``start``); the first unroll's
first layer runs the sensitivity network and appends the maps; every cascade passes them on;
``readout`` turns a state into the image. Consequences for the strategies:

* e2e / checkpoint: exact gradients, the maps' gradient flows back through the state into the
  sensitivity network.
* gleam: the sensitivity network belongs to module 0 (it is in unroll 0) and is trained by
  module 0's local loss only; later modules receive the state detached, i.e. the maps as
  constants. Effect: later modules cannot correct the maps (their gradients w.r.t. the maps are
  dropped, as for any module input), so the maps are optimized for module 0's output; in
  exchange no gradient crosses a module boundary and memory stays one module's.
* invertible: the sensitivity layer is inverted exactly (drop the maps). A cascade has the
  fixed-point inverse of the residual denoisers: with ``D = 1 - eta * mask`` and ``u = D k``,
  ``u - G(D^-1 u) = k_out - eta * mask * y`` where ``G = E o NormUnet o R``, iterated as
  ``u <- b + G(D^-1 u)``. It cannot be relied on: at ``eta = 1`` (the paper's initialization)
  sampled k-space entries are overwritten and the cascade has no inverse at all, and for
  ``eta < 1`` the iteration only converges when ``G / D`` is contractive, which the NormUnet is
  not: it rescales its output by the input's mean and standard deviation, so ``G`` is positively
  homogeneous (``G(a k) = a G(k)``) with a gain near or above 1, and the project's Lipschitz
  caps (norm-bounded convolutions) cannot bound an instance-normalized U-Net. Measured on a
  random 2D cascade: relative error 0.53-0.63 after 10-100 iterations (eta 0.2 and 0.5).
  Hence :meth:`VarNetCascade.inverse_gain` is infinite and the invertible strategy stores every
  cascade's input (memory like checkpointing per cascade, gradients exact); an explicit
  ``invertible.anchor_every > 1`` uses the fixed-point inverse and reports its error.

Deployment (checked 2026-12-02): ``gleam-export --format torchscript`` works, specialized to the
exported image size (other sizes are refused at run time); pt2 with symbolic sizes fails (the
NormUnet's padding to a multiple of ``2**pools`` puts divisibility guards on H and W), and with
``--static`` it exports but the AOTInductor package fails at run time in the proxy executor
("Mismatch between ints consumed and num_ints"), while the same export of PGD runs.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..ops import SenseOp
from .config import ModelConfig
from .inverse import InverseOptions, invert_residual
from .problem import Problem, fft_ndim_of
from .sensitivity import SensitivityNet
from .unet import NormUnet
from .unrolled import Unroll, UnrolledNet


def pack(kspace: Tensor, maps: Tensor) -> Tensor:
    """k-space (B, C, *S) and maps (B, C, M, *S) -> state (B, C, 1 + M, *S)."""
    return torch.cat([kspace.unsqueeze(2), maps], dim=2)


def unpack(state: Tensor) -> tuple[Tensor, Tensor]:
    """state (B, C, 1 + M, *S) -> k-space (B, C, *S), maps (B, C, M, *S)."""
    return state[:, :, 0], state[:, :, 1:]


def _coil_op(maps: Tensor, fft_ndim: int) -> SenseOp:
    """E = F S and R = E^H: the SENSE operator of the maps with no sampling mask."""
    ones = torch.ones((1,) * (maps.dim() - 1), dtype=maps.real.dtype, device=maps.device)
    return SenseOp(maps, ones, fft_ndim=fft_ndim)


def _kspace(problem: Problem) -> Tensor:
    if problem.kspace is None:
        raise ValueError("a varnet model needs the undersampled k-space: build the Problem with "
                         "Problem.from_data(kspace, maps, mask, fft_ndim) (problem.kspace is None)")
    return problem.kspace


class SensitivityLayer(nn.Module):
    """k-space (B, C, *S) -> state (B, C, 1 + M, *S): appends the estimated maps."""

    def __init__(self, net: SensitivityNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, kspace: Tensor, problem: Problem) -> Tensor:
        return pack(kspace, self.net(kspace, problem.op.mask))

    @torch.no_grad()
    def inverse(self, state: Tensor, problem: Problem, options: InverseOptions) -> Tensor:
        return unpack(state)[0].contiguous()


class VarNetCascade(nn.Module):
    """One cascade ``k <- k - eta * mask * (k - y) - E(NormUnet(R(k)))`` on the state (maps unchanged)."""

    def __init__(self, kind: str, fft_ndim: int, sets: int, chans: int, pools: int, dc_weight: float) -> None:
        super().__init__()
        self.fft_ndim = fft_ndim
        self.model = NormUnet(kind, sets, sets, chans, pools)
        self.dc_weight = nn.Parameter(torch.tensor(float(dc_weight)))

    def _model_term(self, op: SenseOp, kspace: Tensor) -> Tensor:
        return op.forward(self.model(op.adjoint(kspace)))

    def forward(self, state: Tensor, problem: Problem) -> Tensor:
        kspace, maps = unpack(state)
        op = _coil_op(maps, self.fft_ndim)
        soft_dc = self.dc_weight * problem.op.mask * (kspace - _kspace(problem))
        return pack(kspace - soft_dc - self._model_term(op, kspace), maps)

    @torch.no_grad()
    def inverse(self, state: Tensor, problem: Problem, options: InverseOptions) -> Tensor:
        """Fixed-point inverse (see the module docstring): not convergent in general."""
        k_out, maps = unpack(state)
        op = _coil_op(maps.contiguous(), self.fft_ndim)
        w = self.dc_weight * problem.op.mask
        d = (1 - w).clamp_min(torch.finfo(w.dtype).eps)
        u = invert_residual(lambda u: -self._model_term(op, u / d), k_out - w * _kspace(problem), options)
        return pack(u / d, maps)

    def inverse_gain(self) -> float:
        """Infinite: the inverse does not contract (see the module docstring), so every cascade
        input must be anchored."""
        return math.inf


class VarNet(UnrolledNet):
    """E2E-VarNet with ``config.unrolls`` cascades (see the module docstring).

    Args:
        config: ``type: varnet`` with the ``varnet`` section (U-Net widths and depths, initial
            ``dc_weight``, convolution kind).
        kind: "2d" (S = (H, W)), "3d" (D, H, W) or "cine" (T, H, W).
        map_sets: M, the number of map sets the sensitivity network estimates.
        share_groups: kept for the interface of :class:`UnrolledNet` (cascades never share weights).
    """

    def __init__(self, config: ModelConfig, kind: str, map_sets: int = 1, share_groups: int = 1) -> None:
        fft_ndim = fft_ndim_of(kind)
        config.check(kind)
        if map_sets < 1:
            raise ValueError(f"map_sets must be >= 1, got {map_sets!r}")
        v = config.varnet
        conv = config.conv_kind(kind)
        sens = SensitivityLayer(SensitivityNet(conv, fft_ndim, map_sets, v.sens_chans, v.sens_pools))
        unrolls = []
        for i in range(config.unrolls):
            cascade = VarNetCascade(conv, fft_ndim, map_sets, v.chans, v.pools, v.dc_weight)
            unrolls.append(Unroll([sens, cascade] if i == 0 else [cascade]))
        nn.Module.__init__(self)
        self.unrolls = nn.ModuleList(unrolls)
        self.first = 0
        self.fft_ndim = fft_ndim
        self.config, self.kind, self.map_sets, self.share_groups = config, kind, map_sets, share_groups

    def start(self, problem: Problem) -> Tensor:
        """The chain's input: the masked k-space (B, C, *S)."""
        return _kspace(problem) * problem.op.mask

    def readout(self, state: Tensor, problem: Problem) -> Tensor:
        """The image (B, M, *S) of a state (B, C, 1 + M, *S): its k-space combined with the
        data's maps (see the module docstring)."""
        return _coil_op(problem.op.maps, self.fft_ndim).adjoint(unpack(state)[0])

    def forward(self, problem: Problem, x: Tensor | None = None) -> Tensor:
        """The reconstruction (B, M, *S) from ``problem`` (or from a state ``x``)."""
        state = self.start(problem) if x is None else x
        for unroll in self.unrolls:
            state = unroll(state, problem)
        return self.readout(state, problem)
