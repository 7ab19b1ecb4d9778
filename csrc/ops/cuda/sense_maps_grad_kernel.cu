#include <torch/library.h>

#include "kernels/cuda/sense_cuda.cuh"
#include "ops/common.h"
#include "ops/cuda/cuda_common.h"

namespace gleam::ops {
namespace {

using namespace cuda_common;

at::Tensor sense_maps_grad_cuda(const at::Tensor& x, const at::Tensor& y, const at::Tensor& maps,
                                const at::Tensor& mask, at::IntArrayRef fft_dims, int64_t coil_chunk_req) {
  const SenseGeometry g = check_maps_grad("sense_maps_grad", x, y, /*second_is_kspace=*/true, maps, mask, fft_dims);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor out = full_maps_grad(x, maps);
  const auto dims = buffer_dims(g);
  const int64_t chunk = coil_chunk(g, coil_chunk_req, x.element_size());
  dispatch_real(x.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    for (int64_t c0 = 0; c0 < g.coils; c0 += chunk) {
      const int64_t nc = std::min(chunk, g.coils - c0);
      at::Tensor buf = chunk_buffer(g, nc, x.options());
      C10_CUDA_CHECK(cuda::gather_kspace<T>(g, rptr<T>(y), mask.data_ptr<T>(), c0, nc, T(1), rptr<T>(buf), stream));
      at::Tensor img = fft(buf, dims, /*forward=*/false);
      buf.reset();
      C10_CUDA_CHECK(cuda::outer_maps<T>(g, rptr<T>(img), rptr<T>(x), c0, nc, /*accumulate=*/false, rptr<T>(out),
                                         stream));
    }
  });
  return reduce_to_maps(out, maps);
}

at::Tensor sense_normal_maps_grad_cuda(const at::Tensor& x, const at::Tensor& gr, const at::Tensor& maps,
                                       const at::Tensor& mask, at::IntArrayRef fft_dims, int64_t coil_chunk_req) {
  const SenseGeometry g =
      check_maps_grad("sense_normal_maps_grad", x, gr, /*second_is_kspace=*/false, maps, mask, fft_dims);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  at::Tensor out = full_maps_grad(x, maps);
  const auto dims = buffer_dims(g);
  const int64_t chunk = coil_chunk(g, coil_chunk_req, x.element_size());
  dispatch_real(x.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    // Two terms per chunk: N_c g paired with conj(x), then N_c x paired with conj(g).
    const at::Tensor* expand[2] = {&gr, &x};
    const at::Tensor* pair[2] = {&x, &gr};
    for (int64_t c0 = 0; c0 < g.coils; c0 += chunk) {
      const int64_t nc = std::min(chunk, g.coils - c0);
      for (int t = 0; t < 2; ++t) {
        at::Tensor buf = chunk_buffer(g, nc, x.options());
        C10_CUDA_CHECK(
            cuda::expand_coils<T>(g, rptr<T>(*expand[t]), rptr<T>(maps), c0, nc, T(1), rptr<T>(buf), stream));
        at::Tensor k = fft(buf, dims, /*forward=*/true);
        if (!dims.empty()) buf.reset();
        C10_CUDA_CHECK(cuda::apply_mask<T>(g, rptr<T>(k), mask.data_ptr<T>(), nc, /*square=*/true, stream));
        at::Tensor img = fft(k, dims, /*forward=*/false);
        if (!dims.empty()) k.reset();
        C10_CUDA_CHECK(cuda::outer_maps<T>(g, rptr<T>(img), rptr<T>(*pair[t]), c0, nc, /*accumulate=*/t == 1,
                                           rptr<T>(out), stream));
      }
    }
  });
  return reduce_to_maps(out, maps);
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CUDA, m) {
  m.impl("sense_maps_grad", &sense_maps_grad_cuda);
  m.impl("sense_normal_maps_grad", &sense_normal_maps_grad_cuda);
}

}  // namespace gleam::ops
