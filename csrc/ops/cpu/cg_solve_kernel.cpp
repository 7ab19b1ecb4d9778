#include <torch/library.h>

#include "kernels/cpu/sense.h"
#include "ops/common.h"
#include "ops/cpu/aten_executor.h"

namespace gleam::ops {
namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> cg_solve_cpu(const at::Tensor& b, const at::Tensor& maps,
                                                            const at::Tensor& mask, const at::Tensor& lam,
                                                            const std::optional<at::Tensor>& x0,
                                                            at::IntArrayRef fft_dims, int64_t iters, double tol,
                                                            int64_t /*coil_chunk*/) {
  const std::pair<SenseGeometry, bool> checked = check_cg_solve(b, maps, mask, lam, x0, fft_dims, iters);
  const SenseGeometry& g = checked.first;
  const bool has_x0 = checked.second;
  at::Tensor x = has_x0 ? x0->clone() : at::empty_like(b);
  at::Tensor work = at::empty({3 * b.numel()}, b.options());
  at::Tensor resid = at::empty({g.batch}, mask.options());
  at::Tensor done = at::empty({g.batch}, b.options().dtype(at::kLong));
  const int64_t stride = lam.dim() == 0 ? 0 : 1;
  const auto ex = aten_executor();
  if (b.scalar_type() == at::kComplexFloat)
    cpu::cg_solve<float>(g, cptr<float>(b), cptr<float>(maps), mask.data_ptr<float>(), lam.data_ptr<float>(), stride,
                         has_x0, iters, tol, cptr<float>(x), cptr<float>(work), resid.data_ptr<float>(),
                         done.data_ptr<int64_t>(), ex);
  else
    cpu::cg_solve<double>(g, cptr<double>(b), cptr<double>(maps), mask.data_ptr<double>(), lam.data_ptr<double>(),
                          stride, has_x0, iters, tol, cptr<double>(x), cptr<double>(work), resid.data_ptr<double>(),
                          done.data_ptr<int64_t>(), ex);
  return {x, resid, done};
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CPU, m) { m.impl("cg_solve", &cg_solve_cpu); }

}  // namespace gleam::ops
