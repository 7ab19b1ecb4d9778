// The normal operator on CUDA, shared by sense_normal, dc_gradient_step and cg_solve:
// out = A^H A x, or the DC step x - step_b (A^H A x - ahy) when dc_x/dc_ahy/step are given.
// Masks that vary along the last axis only take the fused row kernel; everything else runs
// coil chunks through cuFFT (see kernels/cuda/sense_cuda.cuh combine_coils).
#pragma once

#include <cstdlib>

#include "kernels/cuda/normal_rows.cuh"
#include "kernels/cuda/sense_cuda.cuh"
#include "ops/cuda/cuda_common.h"

namespace gleam::ops::cuda_common {

template <typename T>
void normal_into(const SenseGeometry& g, const at::Tensor& x, const at::Tensor& maps, const at::Tensor& mask,
                 int64_t chunk, const T* dc_x, const T* dc_ahy, const T* step, int64_t step_stride, at::Tensor& out,
                 cudaStream_t stream) {
  // 1D masks: the fused one-row-per-block kernel (GLEAM_CUDA_ROW_KERNEL=0 forces cuFFT chunks).
  const char* env = std::getenv("GLEAM_CUDA_ROW_KERNEL");
  if (!(env && env[0] == '0') && cuda::normal_rows_supported(g)) {
    C10_CUDA_CHECK(cuda::normal_rows<T>(g, rptr<T>(x), rptr<T>(maps), mask.data_ptr<T>(), dc_ahy, step, step_stride,
                                        dc_x != nullptr, rptr<T>(out), stream));
    return;
  }
  const auto dims = buffer_dims(g);
  for (int64_t c0 = 0; c0 < g.coils; c0 += chunk) {
    const int64_t nc = std::min(chunk, g.coils - c0);
    at::Tensor buf = chunk_buffer(g, nc, x.options());
    C10_CUDA_CHECK(cuda::expand_coils<T>(g, rptr<T>(x), rptr<T>(maps), c0, nc, T(1), rptr<T>(buf), stream));
    at::Tensor k = fft(buf, dims, /*forward=*/true);
    if (!dims.empty()) buf.reset();  // keep at most two chunk buffers alive
    C10_CUDA_CHECK(cuda::apply_mask<T>(g, rptr<T>(k), mask.data_ptr<T>(), nc, /*square=*/true, stream));
    at::Tensor img = fft(k, dims, /*forward=*/false);
    if (!dims.empty()) k.reset();
    C10_CUDA_CHECK(cuda::combine_coils<T>(g, rptr<T>(img), rptr<T>(maps), c0, nc, c0 == 0, dc_x, dc_ahy, step,
                                          step_stride, rptr<T>(out), stream));
  }
}

}  // namespace gleam::ops::cuda_common
