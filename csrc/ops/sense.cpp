// Schemas of the gleam operator library. Kernels register per backend in
// ops/cpu/*_kernel.cpp and ops/cuda/*_kernel.cu; fake (meta) kernels and autograd are
// registered from Python (gleam_core/ops/_library.py), which also defines these same
// schemas with pure-PyTorch kernels when this extension is not available.
//
// Raw-op conventions (the typed Python wrappers in gleam_core.ops build these):
//   x, ahy, b (B, M, *S) complex; y (B, C, *S); maps (Bm, C, M, *Sm); mask (Bk, 1, *Sk)
//   real of x's precision; step, lam real of shape () or (B,); fft_dims: negative spatial
//   axes to transform; coil_chunk: coils per CUDA batch (0: automatic; unused on CPU).
//
// Maps gradients (the backward formulas of sense_forward, sense_adjoint and sense_normal with
// respect to the maps; PyTorch's conjugate-Wirtinger convention, output gradient g):
//   A x      : dL/dmaps = sense_maps_grad(x, g)        = conj(x_m) F^H(mask g_c)
//   A^H y    : dL/dmaps = sense_maps_grad(g, y)        = conj(g_m) F^H(mask y_c)
//   A^H A x  : dL/dmaps = sense_normal_maps_grad(x, g) = conj(x_m) F^H mask^2 F(maps g)_c
//                                                      + conj(g_m) F^H mask^2 F(maps x)_c
// Both return a tensor shaped like maps (summed over the axes where maps broadcast) and hold
// at most a block (CPU) or a coil chunk (CUDA) of coil images besides it.
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
  m.def("sense_maps_grad(Tensor x, Tensor y, Tensor maps, Tensor mask, int[] fft_dims, int coil_chunk) -> Tensor");
  m.def(
      "sense_normal_maps_grad(Tensor x, Tensor g, Tensor maps, Tensor mask, int[] fft_dims, int coil_chunk) -> "
      "Tensor");
}
