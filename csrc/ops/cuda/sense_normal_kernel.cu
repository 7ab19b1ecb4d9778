#include <torch/library.h>

#include "ops/common.h"
#include "ops/cuda/normal_cuda.h"

namespace gleam::ops {
namespace {

using namespace cuda_common;

at::Tensor sense_normal_cuda(const at::Tensor& x, const at::Tensor& maps, const at::Tensor& mask,
                             at::IntArrayRef fft_dims, int64_t coil_chunk_req) {
  const SenseGeometry g = check_and_describe("sense_normal", x, DataKind::kImage, maps, mask, fft_dims);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty_like(x);
  const int64_t chunk = coil_chunk(g, coil_chunk_req, x.element_size());
  dispatch_real(x.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    normal_into<T>(g, x, maps, mask, chunk, nullptr, nullptr, nullptr, 0, out, c10::cuda::getCurrentCUDAStream());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CUDA, m) { m.impl("sense_normal", &sense_normal_cuda); }

}  // namespace gleam::ops
