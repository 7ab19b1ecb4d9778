#include <torch/library.h>

#include "kernels/cuda/sense_cuda.cuh"
#include "ops/common.h"
#include "ops/cuda/cuda_common.h"

namespace gleam::ops {
namespace {

using namespace cuda_common;

at::Tensor sense_forward_cuda(const at::Tensor& x, const at::Tensor& maps, const at::Tensor& mask,
                              at::IntArrayRef fft_dims, int64_t coil_chunk_req) {
  const SenseGeometry g = check_and_describe("sense_forward", x, DataKind::kImage, maps, mask, fft_dims);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[1] = g.coils;
  at::Tensor y = at::empty(shape, x.options());
  const auto dims = buffer_dims(g);
  const int64_t chunk = coil_chunk(g, coil_chunk_req, x.element_size());
  dispatch_real(x.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    for (int64_t c0 = 0; c0 < g.coils; c0 += chunk) {
      const int64_t nc = std::min(chunk, g.coils - c0);
      at::Tensor buf = chunk_buffer(g, nc, x.options());
      C10_CUDA_CHECK(cuda::expand_coils<T>(g, rptr<T>(x), rptr<T>(maps), c0, nc, T(1), rptr<T>(buf), stream));
      at::Tensor k = fft(buf, dims, /*forward=*/true);
      buf.reset();
      C10_CUDA_CHECK(cuda::scatter_kspace<T>(g, rptr<T>(k), mask.data_ptr<T>(), c0, nc, rptr<T>(y), stream));
    }
  });
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CUDA, m) { m.impl("sense_forward", &sense_forward_cuda); }

}  // namespace gleam::ops
