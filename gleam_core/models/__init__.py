"""``gleam_core.models``: unrolled reconstruction networks on native complex images.

Unrolled proximal gradient (``pgd``: fused gradient-step DC + residual ResNet denoiser) and
MoDL (``modl``: residual CNN denoiser + CG data consistency) for 2D, 3D and cine data, with
the inverses the invertible strategy needs and the split into GLEAM modules.
"""

from .channels import from_channels, to_channels
from .config import DenoiserConfig, ModelConfig
from .dc import CGDC, GradientStepDC
from .denoisers import ResidualDenoiser, cnn_body, conv, resnet_body
from .inverse import InverseOptions, invert_residual, solve_hpd
from .problem import Problem, fft_ndim_of
from .unrolled import Unroll, UnrollChain, UnrolledNet

__all__ = [
    "CGDC", "DenoiserConfig", "GradientStepDC", "InverseOptions", "ModelConfig", "Problem", "ResidualDenoiser",
    "Unroll", "UnrollChain", "UnrolledNet", "cnn_body", "conv", "fft_ndim_of", "from_channels", "invert_residual",
    "resnet_body", "solve_hpd", "to_channels",
]
