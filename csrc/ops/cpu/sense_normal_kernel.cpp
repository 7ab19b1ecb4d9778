#include <torch/library.h>

#include "kernels/cpu/sense.h"
#include "ops/common.h"
#include "ops/cpu/aten_executor.h"

namespace gleam::ops {
namespace {

at::Tensor sense_normal_cpu(const at::Tensor& x, const at::Tensor& maps, const at::Tensor& mask,
                            at::IntArrayRef fft_dims, int64_t /*coil_chunk*/) {
  const SenseGeometry g = check_and_describe("sense_normal", x, DataKind::kImage, maps, mask, fft_dims);
  at::Tensor out = at::empty_like(x);
  const auto ex = aten_executor();
  if (x.scalar_type() == at::kComplexFloat)
    cpu::sense_normal<float>(g, cptr<float>(x), cptr<float>(maps), mask.data_ptr<float>(), cptr<float>(out), ex);
  else
    cpu::sense_normal<double>(g, cptr<double>(x), cptr<double>(maps), mask.data_ptr<double>(), cptr<double>(out), ex);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CPU, m) { m.impl("sense_normal", &sense_normal_cpu); }

}  // namespace gleam::ops
