// Schemas of the gleam operator library. Kernels register per backend in
// ops/cpu/*_kernel.cpp and ops/cuda/*_kernel.cu; fake (meta) kernels and autograd are
// registered from Python (gleam_core/ops/_library.py), which also defines these same
// schemas with pure-PyTorch kernels when this extension is not available.
//
// Raw-op conventions (the typed Python wrappers in gleam_core.ops build these):
//   x, ahy, b (B, M, *S) complex; y (B, C, *S); maps (Bm, C, M, *Sm); mask (Bk, 1, *Sk)
//   real of x's precision; step, lam real of shape () or (B,); fft_dims: negative spatial
//   axes to transform; coil_chunk: coils per CUDA batch (0: automatic; unused on CPU).
#include <torch/library.h>

TORCH_LIBRARY(gleam, m) {
  m.def("sense_forward(Tensor x, Tensor maps, Tensor mask, int[] fft_dims, int coil_chunk) -> Tensor");
  m.def("sense_adjoint(Tensor y, Tensor maps, Tensor mask, int[] fft_dims, int coil_chunk) -> Tensor");
  m.def("sense_normal(Tensor x, Tensor maps, Tensor mask, int[] fft_dims, int coil_chunk) -> Tensor");
  m.def(
      "dc_gradient_step(Tensor x, Tensor ahy, Tensor maps, Tensor mask, Tensor step, int[] fft_dims, "
      "int coil_chunk) -> Tensor");
  m.def(
      "cg_solve(Tensor b, Tensor maps, Tensor mask, Tensor lam, Tensor? x0, int[] fft_dims, int iters, "
      "float tol, int coil_chunk) -> (Tensor, Tensor, Tensor)");
}
