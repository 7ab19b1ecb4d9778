"""``gleam_core.ops``: fast multi-coil MRI operators.

SENSE forward/adjoint/normal, fused data consistency (gradient step and batched CG with
implicit-differentiation backward), and FFT/coil utilities. Backed by compiled C++ (CPU)
and CUDA kernels registered as ``torch.ops.gleam.*``; ``backend()`` says which serve each
device (the pure-PyTorch reference fills in where no compiled kernel exists). Every public
function and ``SenseOp`` method also takes NumPy and DLPack (CuPy, JAX) arrays and returns the
caller's array type (``gleam_core.interop.arrays``).
"""

from . import reference
from ._library import SCHEMAS
from .coils import coil_combine, rss, zero_filled, zero_filled_rss
from .fft import fft2c, fft3c, fftnc, ifft2c, ifft3c, ifftnc
from .sense import (CGResult, SenseOp, backend, dc_cg, dc_gradient_step, sense_adjoint, sense_forward,
                    sense_normal)

__all__ = [
    "CGResult", "SCHEMAS", "SenseOp", "backend", "coil_combine", "dc_cg", "dc_gradient_step", "fft2c", "fft3c",
    "fftnc", "ifft2c", "ifft3c", "ifftnc", "reference", "rss", "sense_adjoint", "sense_forward", "sense_normal",
    "zero_filled", "zero_filled_rss",
]
