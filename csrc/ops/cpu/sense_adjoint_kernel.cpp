#include <torch/library.h>

#include "kernels/cpu/sense.h"
#include "ops/common.h"
#include "ops/cpu/aten_executor.h"

namespace gleam::ops {
namespace {

at::Tensor sense_adjoint_cpu(const at::Tensor& y, const at::Tensor& maps, const at::Tensor& mask,
                             at::IntArrayRef fft_dims, int64_t /*coil_chunk*/) {
  const SenseGeometry g = check_and_describe("sense_adjoint", y, DataKind::kKspace, maps, mask, fft_dims);
  std::vector<int64_t> shape(y.sizes().begin(), y.sizes().end());
  shape[1] = g.sets;
  at::Tensor x = at::empty(shape, y.options());
  const auto ex = aten_executor();
  if (y.scalar_type() == at::kComplexFloat)
    cpu::sense_adjoint<float>(g, cptr<float>(y), cptr<float>(maps), mask.data_ptr<float>(), cptr<float>(x), ex);
  else
    cpu::sense_adjoint<double>(g, cptr<double>(y), cptr<double>(maps), mask.data_ptr<double>(), cptr<double>(x), ex);
  return x;
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CPU, m) { m.impl("sense_adjoint", &sense_adjoint_cpu); }

}  // namespace gleam::ops
