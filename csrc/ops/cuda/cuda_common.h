// Shared pieces of the CUDA op kernels: coil chunking, the cuFFT calls (through ATen,
// on the current stream with its plan cache) and float/double dispatch.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <algorithm>
#include <vector>

#include "kernels/geometry.h"

namespace gleam::ops::cuda_common {

// Coils per chunk: the caller's choice, else as many as keep one chunk buffer of
// (B, chunk, *S) complex values under 256 MiB (cuFFT works out of place, so at most two
// such buffers are alive at once). Smaller chunks cost extra launches on small problems.
inline int64_t coil_chunk(const SenseGeometry& g, int64_t requested, int64_t elem_bytes) {
  if (requested > 0) return std::min(requested, g.coils);
  const int64_t per_coil = std::max<int64_t>(g.batch * g.spatial() * elem_bytes, 1);
  return std::clamp<int64_t>((int64_t(256) << 20) / per_coil, 1, g.coils);
}

// A chunk buffer is (B, chunk, n0, n1, n2), or (B, chunk, n1, n2) for 2D problems: the
// padded unit axis is dropped so that cuFFT sees the plain batched layout.
inline bool drop_unit_axis(const SenseGeometry& g) { return g.n[0] == 1; }

// FFT dims of a chunk buffer for the axes flagged in the geometry.
inline std::vector<int64_t> buffer_dims(const SenseGeometry& g) {
  std::vector<int64_t> d;
  const int64_t shift = drop_unit_axis(g) ? 1 : 0;
  for (int a = 0; a < 3; ++a)
    if (g.fft[a]) d.push_back(2 + a - shift);
  return d;
}

inline at::Tensor chunk_buffer(const SenseGeometry& g, int64_t nc, const at::TensorOptions& opts) {
  if (drop_unit_axis(g)) return at::empty({g.batch, nc, g.n[1], g.n[2]}, opts);
  return at::empty({g.batch, nc, g.n[0], g.n[1], g.n[2]}, opts);
}

// Orthonormal c2c transform of the buffer along `dims` (identity when dims is empty).
inline at::Tensor fft(const at::Tensor& buf, const std::vector<int64_t>& dims, bool forward) {
  if (dims.empty()) return buf;
  constexpr int64_t kOrtho = 1;  // at::native::fft_norm_mode::by_root_n
  return at::_fft_c2c(buf, dims, kOrtho, forward).contiguous();
}

template <typename F> void dispatch_real(at::ScalarType complex_type, F&& f) {
  if (complex_type == at::kComplexFloat)
    f(float{});
  else
    f(double{});
}

template <typename T> T* rptr(const at::Tensor& t) { return reinterpret_cast<T*>(t.data_ptr()); }
template <typename T> const T* rptr_or_null(const std::optional<at::Tensor>& t) {
  return t && t->defined() ? reinterpret_cast<const T*>(t->data_ptr()) : nullptr;
}

}  // namespace gleam::ops::cuda_common
