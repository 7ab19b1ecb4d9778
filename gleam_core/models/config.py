"""Configuration of the unrolled networks (the ``model:`` section of a training spec).

Field metadata ``min``/``odd`` are constraints the spec validator checks and reports with the
full key path; ``ModelConfig.check`` holds the cross-field rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class DenoiserConfig:
    """The residual CNN ``x + f(x)``: ``resnet`` (blocks of two convs) or ``cnn`` (MoDL's plain stack)."""

    type: Literal["resnet", "cnn"] = "resnet"
    features: int = field(default=32, metadata={"min": 1})
    blocks: int = field(default=2, metadata={"min": 0})        # resnet only
    layers: int = field(default=5, metadata={"min": 2})        # cnn only
    kernel_size: int = field(default=3, metadata={"min": 1, "odd": True})
    # auto: Conv2d for 2d data, Conv3d for 3d and cine; "2+1d" factorizes 3D convs (cine).
    conv: Literal["auto", "2d", "3d", "2+1d"] = "auto"
    bias: bool | None = None                                   # None: resnet yes, cnn no (MoDL)
    out_scale: float = field(default=1.0, metadata={"min": 0.0})
    # Cap on f's Lipschitz constant (norm-bounded convs); below 1, x + f(x) is invertible by
    # fixed-point iteration, which the invertible strategy relies on. None: unconstrained.
    lipschitz: float | None = field(default=None, metadata={"above": 0.0})


@dataclass
class VarNetConfig:
    """E2E-VarNet (``model.type: varnet``): NormUnet widths/depths of the cascades and of the
    sensitivity network (the paper's fastMRI model: chans 18, pools 4, sens_chans 8, sens_pools 4)."""

    chans: int = field(default=18, metadata={"min": 1})
    pools: int = field(default=4, metadata={"min": 0})
    sens_chans: int = field(default=8, metadata={"min": 1})
    sens_pools: int = field(default=4, metadata={"min": 0})
    # Initial soft data-consistency weight eta (learned); the paper starts at 1.
    dc_weight: float = field(default=1.0, metadata={"min": 0.0})
    # auto: 2D U-Net for 2d data, 3D for 3d, (2+1)D (pooling along H, W only) for cine.
    conv: Literal["auto", "2d", "3d", "2+1d"] = "auto"


@dataclass
class ModelConfig:
    """An unrolled network: ``pgd`` (gradient-step DC then denoiser), ``modl`` (denoiser then CG
    DC) or ``varnet`` (E2E-VarNet: k-space cascades with a NormUnet and learned sensitivities)."""

    type: Literal["pgd", "modl", "varnet"] = "pgd"
    unrolls: int = field(default=8, metadata={"min": 1})
    # One denoiser for all unrolls (within each GLEAM module: decoupled modules cannot share).
    share_weights: bool = False
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    step: float = 0.5                                          # pgd: initial gradient step t
    learn_step: bool = True
    lam: float = field(default=0.05, metadata={"min": 0.0})   # modl: initial lam (> 0)
    learn_lam: bool = False
    cg_iters: int = field(default=10, metadata={"min": 0})
    cg_tol: float = field(default=0.0, metadata={"min": 0.0})
    varnet: VarNetConfig = field(default_factory=VarNetConfig)

    def check(self, kind: str) -> None:
        """Cross-field rules; raises ValueError naming the key (relative to ``model.``)."""
        if self.type == "modl" and self.lam <= 0:
            raise ValueError(f"lam must be > 0 for a modl model, got {self.lam!r}")
        if self.type == "varnet" and self.share_weights:
            raise ValueError("share_weights is not supported by a varnet model (every cascade has its own U-Net)")
        varnet = self.type == "varnet"
        key, conv = ("varnet.conv", self.varnet.conv) if varnet else ("denoiser.conv", self.denoiser.conv)
        if kind == "2d" and conv in ("3d", "2+1d"):
            raise ValueError(f"{key}={conv!r} needs 3 spatial axes, but the data kind is '2d' (allowed: auto, 2d)")
        if kind in ("3d", "cine") and conv == "2d":
            raise ValueError(f"{key}='2d' cannot filter {kind} data with 3 spatial axes (allowed: auto, 3d, 2+1d)")

    def conv_kind(self, kind: str) -> str:
        """The convolution used for data of ``kind`` (by the denoiser, or varnet's U-Nets)."""
        if self.type == "varnet":
            if self.varnet.conv != "auto":
                return self.varnet.conv
            return {"2d": "2d", "3d": "3d", "cine": "2+1d"}[kind]
        if self.denoiser.conv != "auto":
            return self.denoiser.conv
        return "2d" if kind == "2d" else "3d"

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Rebuilds a config saved with ``dataclasses.asdict`` (e.g. from a checkpoint)."""
        return cls(**{**d, "denoiser": DenoiserConfig(**d["denoiser"]),
                      "varnet": VarNetConfig(**d.get("varnet", {}))})
