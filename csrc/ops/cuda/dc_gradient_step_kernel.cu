#include <torch/library.h>

#include "ops/common.h"
#include "ops/cuda/normal_cuda.h"

namespace gleam::ops {
namespace {

using namespace cuda_common;

at::Tensor dc_gradient_step_cuda(const at::Tensor& x, const at::Tensor& ahy, const at::Tensor& maps,
                                 const at::Tensor& mask, const at::Tensor& step, at::IntArrayRef fft_dims,
                                 int64_t coil_chunk_req) {
  const char* op = "dc_gradient_step";
  const SenseGeometry g = check_and_describe(op, x, DataKind::kImage, maps, mask, fft_dims);
  check_same_as(op, "ahy", ahy, "x", x);
  check_batch_param(op, "step", step, x, g.batch);
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty_like(x);
  const int64_t chunk = coil_chunk(g, coil_chunk_req, x.element_size());
  dispatch_real(x.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    normal_into<T>(g, x, maps, mask, chunk, rptr<T>(x), rptr<T>(ahy), step.data_ptr<T>(), step.dim() == 0 ? 0 : 1,
                   out, c10::cuda::getCurrentCUDAStream());
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CUDA, m) { m.impl("dc_gradient_step", &dc_gradient_step_cuda); }

}  // namespace gleam::ops
