// Framework-free CUDA kernels for the non-FFT parts of the SENSE operators (the FFTs are
// cuFFT calls made by the torch glue in ops/cuda). All pointers are device pointers;
// complex data is interleaved (re, im) of T = float or double; every launch goes to the
// given stream and returns the launch status.
//
// The coil buffer of a chunk of `nc` coils has shape (B, nc, n0, n1, n2) in FFT order
// along the transformed axes: buffer index j holds array index (j + n/2) % n, i.e. the
// fftshift/ifftshift pair is folded into the gathers and scatters (exact for odd sizes).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/geometry.h"

namespace gleam::cuda {

// buf[b, c, j] = scale * sum_m maps[b, c0 + c, m, i(j)] * x[b, m, i(j)].
template <typename T>
cudaError_t expand_coils(const SenseGeometry& g, const T* x, const T* maps, int64_t c0, int64_t nc, T scale, T* buf,
                         cudaStream_t stream);

// buf[b, c, j] = scale * mask[i(j)] * y[b, c0 + c, i(j)].
template <typename T>
cudaError_t gather_kspace(const SenseGeometry& g, const T* y, const T* mask, int64_t c0, int64_t nc, T scale, T* buf,
                          cudaStream_t stream);

// y[b, c0 + c, i] = mask[i] * buf[b, c, j(i)].
template <typename T>
cudaError_t scatter_kspace(const SenseGeometry& g, const T* buf, const T* mask, int64_t c0, int64_t nc, T* y,
                           cudaStream_t stream);

// buf[b, c, j] *= mask[i(j)] (or mask^2): the k-space weighting between the normal op's FFTs.
template <typename T>
cudaError_t apply_mask(const SenseGeometry& g, T* buf, const T* mask, int64_t nc, bool square, cudaStream_t stream);

// out[b, m, i] = base + coef_b * sum_c conj(maps[b, c0 + c, m, i]) * buf[b, c, j(i)], where
//   base = first ? (x ? x + step_b * ahy : 0) : out,   coef_b = step ? -step_b : 1.
// With x/ahy/step null this is the coil combination of the adjoint and normal ops; with them
// it is the DC gradient step x - step * (A^H A x - ahy).
template <typename T>
cudaError_t combine_coils(const SenseGeometry& g, const T* buf, const T* maps, int64_t c0, int64_t nc, bool first,
                          const T* x, const T* ahy, const T* step, int64_t step_stride, T* out, cudaStream_t stream);

// out[b, c0 + c, m, i] (=, or += with accumulate) conj(u[b, m, i]) * buf[b, c, j(i)]: the
// maps gradients' outer product; `out` has the unbroadcast maps layout (B, C, M, *S).
template <typename T>
cudaError_t outer_maps(const SenseGeometry& g, const T* buf, const T* u, int64_t c0, int64_t nc, bool accumulate,
                       T* out, cudaStream_t stream);

}  // namespace gleam::cuda
