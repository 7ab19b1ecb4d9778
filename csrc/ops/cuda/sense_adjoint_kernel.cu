#include <torch/library.h>

#include "kernels/cuda/sense_cuda.cuh"
#include "ops/common.h"
#include "ops/cuda/cuda_common.h"

namespace gleam::ops {
namespace {

using namespace cuda_common;

at::Tensor sense_adjoint_cuda(const at::Tensor& y, const at::Tensor& maps, const at::Tensor& mask,
                              at::IntArrayRef fft_dims, int64_t coil_chunk_req) {
  const SenseGeometry g = check_and_describe("sense_adjoint", y, DataKind::kKspace, maps, mask, fft_dims);
  const c10::cuda::CUDAGuard guard(y.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  std::vector<int64_t> shape(y.sizes().begin(), y.sizes().end());
  shape[1] = g.sets;
  at::Tensor x = at::empty(shape, y.options());
  const auto dims = buffer_dims(g);
  const int64_t chunk = coil_chunk(g, coil_chunk_req, y.element_size());
  dispatch_real(y.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    for (int64_t c0 = 0; c0 < g.coils; c0 += chunk) {
      const int64_t nc = std::min(chunk, g.coils - c0);
      at::Tensor buf = chunk_buffer(g, nc, y.options());
      C10_CUDA_CHECK(cuda::gather_kspace<T>(g, rptr<T>(y), mask.data_ptr<T>(), c0, nc, T(1), rptr<T>(buf), stream));
      at::Tensor img = fft(buf, dims, /*forward=*/false);
      buf.reset();
      C10_CUDA_CHECK(cuda::combine_coils<T>(g, rptr<T>(img), rptr<T>(maps), c0, nc, c0 == 0, nullptr, nullptr,
                                            nullptr, 0, rptr<T>(x), stream));
    }
  });
  return x;
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CUDA, m) { m.impl("sense_adjoint", &sense_adjoint_cuda); }

}  // namespace gleam::ops
