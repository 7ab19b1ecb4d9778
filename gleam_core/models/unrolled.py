"""Unrolled reconstruction networks (proximal gradient and MoDL) and their split into modules.

An unrolled network is a chain of U unrolls, each a short sequence of invertible layers:
``pgd``: gradient-step DC then residual denoiser; ``modl``: residual denoiser then CG DC. It
maps the zero-filled image ``A^H y`` (B, M, *S) complex to a reconstruction of the same shape.
``UnrolledNet.split(M)`` cuts it into M :class:`UnrollChain` modules of K = U / M unrolls that
share parameters with the whole network (GLEAM trains them; inference runs the whole chain).
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .dc import CGDC, GradientStepDC
from .denoisers import ResidualDenoiser, cnn_body, resnet_body
from .inverse import InverseOptions
from .problem import Problem, fft_ndim_of
from .unet import NormUnet


class Unroll(nn.Module):
    """One iteration of the network: ``layers`` applied in order, each with ``inverse``."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, problem: Problem) -> Tensor:
        for layer in self.layers:
            x = layer(x, problem)
        return x

    @torch.no_grad()
    def inverse(self, y: Tensor, problem: Problem, options: InverseOptions) -> Tensor:
        """The input that produced output ``y`` (layers inverted in reverse order)."""
        for layer in reversed(self.layers):
            y = layer.inverse(y, problem, options)
        return y

    def inverse_gain(self) -> float:
        """Product of the layers' bounds on error amplification by their inverses (layers that
        state none, like the residual denoiser, count as 1)."""
        return math.prod(layer.inverse_gain() for layer in self.layers if hasattr(layer, "inverse_gain"))


class UnrollChain(nn.Module):
    """A contiguous run of unrolls; ``first`` is the index of its first unroll in the whole network."""

    def __init__(self, unrolls: list[Unroll], first: int = 0) -> None:
        super().__init__()
        self.unrolls = nn.ModuleList(unrolls)
        self.first = first

    def forward(self, problem: Problem, x: Tensor | None = None) -> Tensor:
        """Runs the chain from ``x`` (default: the zero-filled image ``problem.ahy``)."""
        x = problem.ahy if x is None else x
        for unroll in self.unrolls:
            x = unroll(x, problem)
        return x


def _denoiser(config: ModelConfig, kind: str, map_sets: int) -> ResidualDenoiser:
    d = config.denoiser
    conv_kind = config.conv_kind(kind)
    if d.type == "resnet":
        body = resnet_body(conv_kind, 2 * map_sets, d.features, d.blocks, d.kernel_size,
                           True if d.bias is None else d.bias, d.lipschitz)
    else:
        body = cnn_body(conv_kind, 2 * map_sets, d.features, d.layers, d.kernel_size,
                        False if d.bias is None else d.bias, d.lipschitz)
    return ResidualDenoiser(body, d.out_scale)


class UnrolledNet(UnrollChain):
    """The whole unrolled network.

    Args:
        config: architecture (see :class:`ModelConfig`).
        kind: data kind, "2d" (S = (H, W)), "3d" (D, H, W) or "cine" (T, H, W).
        map_sets: M, the number of sensitivity-map sets (2 real channels each in the CNN).
        share_groups: with ``config.share_weights``, the unrolls form this many contiguous groups
            that each share one denoiser (1 for whole-network training; the number of GLEAM
            modules for GLEAM, whose modules cannot share weights).
    """

    def __init__(self, config: ModelConfig, kind: str, map_sets: int = 1, share_groups: int = 1) -> None:
        self.fft_ndim = fft_ndim_of(kind)
        config.check(kind)
        if map_sets < 1:
            raise ValueError(f"map_sets must be >= 1, got {map_sets!r}")
        if config.unrolls % share_groups:
            raise ValueError(f"share_groups={share_groups} does not divide model.unrolls={config.unrolls}")
        per_group = config.unrolls // share_groups
        unrolls, shared = [], None
        for i in range(config.unrolls):
            if not config.share_weights or i % per_group == 0:
                shared = _denoiser(config, kind, map_sets)
            if config.type == "pgd":
                unrolls.append(Unroll([GradientStepDC(config.step, config.learn_step), shared]))
            else:
                unrolls.append(Unroll([shared, CGDC(config.lam, config.learn_lam, config.cg_iters, config.cg_tol)]))
        super().__init__(unrolls)
        self.config, self.kind, self.map_sets, self.share_groups = config, kind, map_sets, share_groups

    def start(self, problem: Problem) -> Tensor:
        """The chain's input state: the zero-filled image ``A^H y`` (k-space networks differ)."""
        return problem.ahy

    def readout(self, state: Tensor, problem: Problem) -> Tensor:
        """The reconstruction (B, M, *S) of a chain state: the state itself for image-domain networks."""
        return state

    @staticmethod
    def build(config: ModelConfig, kind: str, map_sets: int = 1, share_groups: int = 1) -> "UnrolledNet":
        """The network ``config.type`` names: :class:`UnrolledNet` (pgd, modl) or
        :class:`~gleam_core.models.varnet.VarNet`."""
        if config.type == "varnet":
            from .varnet import VarNet  # varnet.py builds on this module
            return VarNet(config, kind, map_sets, share_groups)
        return UnrolledNet(config, kind, map_sets, share_groups)

    def reconstruct(self, kspace: Tensor, maps: Tensor, mask: Tensor) -> Tensor:
        """Tensors in, image out (the entry deployment and export use): undersampled k-space
        (B, C, *S), maps (B, C, M, *S) and mask (broadcastable to (B, 1, *S)) -> (B, M, *S), the
        whole network run from its input (``start``). The operator is built here, so traced and
        exported graphs contain it."""
        return self(Problem.from_data(kspace, maps, mask, self.fft_ndim))

    def split(self, num_modules: int) -> list[UnrollChain]:
        """M chains of K = U / M consecutive unrolls, sharing parameters with this network."""
        u = len(self.unrolls)
        if not isinstance(num_modules, int) or num_modules < 1 or u % num_modules:
            raise ValueError(f"cannot split {u} unrolls into {num_modules!r} modules of equal size "
                             f"(modules must divide model.unrolls={u})")
        k = u // num_modules
        chains = [UnrollChain(list(self.unrolls[i * k:(i + 1) * k]), first=i * k) for i in range(num_modules)]
        owner: dict[int, int] = {}
        for m, chain in enumerate(chains):
            for p in chain.parameters():
                if owner.setdefault(id(p), m) != m:
                    raise ValueError(f"modules {owner[id(p)]} and {m} share weights (model.share_weights with "
                                     f"share_groups={self.share_groups}); build the model with share_groups="
                                     f"{num_modules} so each module owns its denoiser")
        return chains

    def set_compute_dtype(self, dtype: torch.dtype | None) -> None:
        """Runs every denoiser's CNN (VarNet: every NormUnet's U-Net) in ``dtype`` under autocast
        (torch.bfloat16 or torch.float16; None: the parameters' dtype). Data consistency is
        unaffected (complex64/128)."""
        if dtype not in (None, torch.bfloat16, torch.float16):
            raise ValueError(f"compute dtype must be None, torch.bfloat16 or torch.float16, got {dtype!r}")
        for m in self.modules():
            if isinstance(m, (ResidualDenoiser, NormUnet)):
                m.compute_dtype = dtype

    def description(self) -> dict:
        """What :meth:`from_description` needs to rebuild this architecture (stored in checkpoints)."""
        return {"config": dataclasses.asdict(self.config), "kind": self.kind, "map_sets": self.map_sets,
                "share_groups": self.share_groups}

    @staticmethod
    def from_description(d: dict) -> "UnrolledNet":
        return UnrolledNet.build(ModelConfig.from_dict(d["config"]), d["kind"], d["map_sets"], d["share_groups"])
