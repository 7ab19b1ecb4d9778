#include <torch/library.h>

#include "kernels/cpu/sense.h"
#include "ops/common.h"
#include "ops/cpu/aten_executor.h"

namespace gleam::ops {
namespace {

at::Tensor sense_forward_cpu(const at::Tensor& x, const at::Tensor& maps, const at::Tensor& mask,
                             at::IntArrayRef fft_dims, int64_t /*coil_chunk*/) {
  const SenseGeometry g = check_and_describe("sense_forward", x, DataKind::kImage, maps, mask, fft_dims);
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape[1] = g.coils;
  at::Tensor y = at::empty(shape, x.options());
  const auto ex = aten_executor();
  if (x.scalar_type() == at::kComplexFloat)
    cpu::sense_forward<float>(g, cptr<float>(x), cptr<float>(maps), mask.data_ptr<float>(), cptr<float>(y), ex);
  else
    cpu::sense_forward<double>(g, cptr<double>(x), cptr<double>(maps), mask.data_ptr<double>(), cptr<double>(y), ex);
  return y;
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CPU, m) { m.impl("sense_forward", &sense_forward_cpu); }

}  // namespace gleam::ops
