#include <torch/library.h>

#include <vector>

#include "kernels/cuda/cg_cuda.cuh"
#include "ops/common.h"
#include "ops/cuda/normal_cuda.h"

namespace gleam::ops {
namespace {

using namespace cuda_common;

std::tuple<at::Tensor, at::Tensor, at::Tensor> cg_solve_cuda(const at::Tensor& b, const at::Tensor& maps,
                                                             const at::Tensor& mask, const at::Tensor& lam,
                                                             const std::optional<at::Tensor>& x0,
                                                             at::IntArrayRef fft_dims, int64_t iters, double tol,
                                                             int64_t coil_chunk_req) {
  // Not a structured binding: lambdas below capture g and has_x0 (C++17 forbids that).
  const std::pair<SenseGeometry, bool> checked = check_cg_solve(b, maps, mask, lam, x0, fft_dims, iters);
  const SenseGeometry& g = checked.first;
  const bool has_x0 = checked.second;
  const c10::cuda::CUDAGuard guard(b.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const int64_t B = g.batch, n = g.sets * g.spatial();
  const int64_t chunk = coil_chunk(g, coil_chunk_req, b.element_size());
  const int64_t lam_stride = lam.dim() == 0 ? 0 : 1;

  at::Tensor x = has_x0 ? x0->clone() : at::zeros_like(b);
  at::Tensor r = has_x0 ? at::empty_like(b) : b.clone();
  at::Tensor ap = at::empty_like(b);
  const int64_t nblk = cuda::cg_blocks(n);
  at::Tensor scal = at::zeros({7 * B + B * nblk}, b.options().dtype(at::kDouble));
  at::Tensor flags = at::zeros({B}, b.options().dtype(at::kInt));
  at::Tensor done = at::zeros({B}, b.options().dtype(at::kLong));
  at::Tensor resid = at::empty({B}, mask.options());
  double* s = scal.data_ptr<double>();
  cuda::CgState st{s, s + B, s + 2 * B, s + 3 * B, flags.data_ptr<int>(), done.data_ptr<int64_t>(), s + 7 * B};
  double* pap = s + 4 * B;
  double* rs_new = s + 5 * B;

  dispatch_real(b.scalar_type(), [&](auto tag) {
    using T = decltype(tag);
    const int* all = nullptr;  // before cg_start every element is active
    auto apply = [&](const at::Tensor& v, at::Tensor& out, const int* active) {
      normal_into<T>(g, v, maps, mask, chunk, nullptr, nullptr, nullptr, 0, out, stream);
      C10_CUDA_CHECK(cuda::add_scaled<T>(rptr<T>(out), rptr<T>(v), lam.data_ptr<T>(), lam_stride, active, B, n, stream));
    };
    if (has_x0) {
      apply(x, ap, all);
      r.copy_(b).sub_(ap);
    }
    at::Tensor p = r.clone();
    C10_CUDA_CHECK(cuda::batched_dot<T>(rptr<T>(r), rptr<T>(r), B, n, st.partial, st.rs, stream));
    C10_CUDA_CHECK(cuda::batched_dot<T>(rptr<T>(b), rptr<T>(b), B, n, st.partial, st.bnorm, stream));
    C10_CUDA_CHECK(cuda::cg_start(st, B, tol, stream));
    for (int64_t it = 0; it < iters; ++it) {
      // With a tolerance, stop early once every element converged (one host sync per 8 steps).
      if (tol > 0 && it > 0 && it % 8 == 0 && flags.max().item<int>() == 0) break;
      apply(p, ap, st.active);
      C10_CUDA_CHECK(cuda::batched_dot<T>(rptr<T>(p), rptr<T>(ap), B, n, st.partial, pap, stream));
      C10_CUDA_CHECK(cuda::cg_alpha(st, pap, B, stream));
      C10_CUDA_CHECK(cuda::cg_update_xr<T>(rptr<T>(x), rptr<T>(r), rptr<T>(p), rptr<T>(ap), st, B, n, rs_new, stream));
      C10_CUDA_CHECK(cuda::cg_beta(st, rs_new, B, it, tol, stream));
      C10_CUDA_CHECK(cuda::cg_update_p<T>(rptr<T>(p), rptr<T>(r), st, B, n, stream));
    }
    C10_CUDA_CHECK(cuda::cg_finish<T>(st, B, resid.data_ptr<T>(), stream));
  });
  if (has_x0) {  // b = 0: x = 0 solves the system exactly, whatever x0 was (as on the CPU)
    std::vector<int64_t> per_batch(size_t(x.dim()), 1);
    per_batch[0] = B;
    x.masked_fill_(scal.narrow(0, B, B).eq(0).view(per_batch), 0);
  }
  return {x, resid, done};
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CUDA, m) { m.impl("cg_solve", &cg_solve_cuda); }

}  // namespace gleam::ops
