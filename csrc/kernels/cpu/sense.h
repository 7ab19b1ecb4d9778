// Framework-free fused SENSE kernels for the CPU (raw pointers, no torch).
//
// Shapes and layouts: see kernels/geometry.h. All transforms are centered and
// orthonormal (fastMRI's fft2c/ifft2c over the axes flagged in `g.fft`), complex data is
// interleaved std::complex<T>, the mask is real (binary or weights).
//   forward   y = mask * F(maps * x)                       (B, C, *S)
//   adjoint   x = sum_c conj(maps_c) * F^H(mask * y_c)      (B, M, *S)
//   normal    out = A^H A x, with mask^2 between the transforms
//   dc step   out = x - step_b * (A^H A x - ahy)
//   cg        (A^H A + lam_b I) x = b, per batch element
// Extra memory: one block buffer (block size x 8 coils) per thread, plus the CG vectors.
#pragma once

#include <complex>
#include <cstdint>

#include "kernels/cpu/pipeline.h"
#include "kernels/geometry.h"

namespace gleam::cpu {

template <typename T>
void sense_forward(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* maps, const T* mask,
                   std::complex<T>* y, const Executor& ex);

template <typename T>
void sense_adjoint(const SenseGeometry& g, const std::complex<T>* y, const std::complex<T>* maps, const T* mask,
                   std::complex<T>* x, const Executor& ex);

// `active` (optional, B bytes): batch elements with active[b] == 0 are skipped (out untouched).
template <typename T>
void sense_normal(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* maps, const T* mask,
                  std::complex<T>* out, const Executor& ex, const uint8_t* active = nullptr);

// step[b * step_stride] is the real step of batch element b (step_stride 0: one step for all).
template <typename T>
void dc_gradient_step(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* ahy,
                      const std::complex<T>* maps, const T* mask, const T* step, int64_t step_stride,
                      std::complex<T>* out, const Executor& ex);

// Batched conjugate gradients. `x` holds the initial guess (ignored unless has_x0) and
// receives the solution. Each batch element stops on its own once
// ||r_b|| <= tol * ||b_b|| (tol > 0). `work` holds 3 * B * M * S complex values.
// Outputs: resid[b] = ||r_b|| / ||b_b|| (0 when b_b == 0), iters_done[b].
template <typename T>
void cg_solve(const SenseGeometry& g, const std::complex<T>* b, const std::complex<T>* maps, const T* mask,
              const T* lam, int64_t lam_stride, bool has_x0, int64_t iters, double tol, std::complex<T>* x,
              std::complex<T>* work, T* resid, int64_t* iters_done, const Executor& ex);

// Gradients with respect to the maps, in the unbroadcast maps layout (B, C, M, *S) of the
// geometry (the op sums over axes where the maps broadcast):
//   maps_grad          out[b,c,m] = conj(x[b,m]) * F^H(mask * y[b,c])        (backward of A and A^H)
//   normal_maps_grad   out[b,c,m] = conj(x[b,m]) * F^H mask^2 F(sum_m' maps[b,c,m'] g[b,m'])
//                                 + conj(g[b,m]) * F^H mask^2 F(sum_m' maps[b,c,m'] x[b,m'])  (of A^H A)
// Coil images are recomputed block by block; nothing but `out` is written.
template <typename T>
void sense_maps_grad(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* y, const T* mask,
                     std::complex<T>* out, const Executor& ex);

template <typename T>
void sense_normal_maps_grad(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* gr,
                            const std::complex<T>* maps, const T* mask, std::complex<T>* out, const Executor& ex);

namespace detail {
// out = init - step_b * A^H A x with init = x + step_b * ahy (DC step), or out = A^H A x
// when `ahy` is null and `step` is null. Shared by sense_normal, dc_gradient_step and cg_solve.
template <typename T>
void normal_impl(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* maps, const T* mask,
                 std::complex<T>* out, const Executor& ex, const uint8_t* active, const std::complex<T>* ahy,
                 const T* step, int64_t step_stride);
}  // namespace detail

}  // namespace gleam::cpu
