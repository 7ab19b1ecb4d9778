#include <torch/library.h>

#include "kernels/cpu/sense.h"
#include "ops/common.h"
#include "ops/cpu/aten_executor.h"

namespace gleam::ops {
namespace {

at::Tensor dc_gradient_step_cpu(const at::Tensor& x, const at::Tensor& ahy, const at::Tensor& maps,
                                const at::Tensor& mask, const at::Tensor& step, at::IntArrayRef fft_dims,
                                int64_t /*coil_chunk*/) {
  const char* op = "dc_gradient_step";
  const SenseGeometry g = check_and_describe(op, x, DataKind::kImage, maps, mask, fft_dims);
  check_same_as(op, "ahy", ahy, "x", x);
  check_batch_param(op, "step", step, x, g.batch);
  at::Tensor out = at::empty_like(x);
  const int64_t stride = step.dim() == 0 ? 0 : 1;
  const auto ex = aten_executor();
  if (x.scalar_type() == at::kComplexFloat)
    cpu::dc_gradient_step<float>(g, cptr<float>(x), cptr<float>(ahy), cptr<float>(maps), mask.data_ptr<float>(),
                                 step.data_ptr<float>(), stride, cptr<float>(out), ex);
  else
    cpu::dc_gradient_step<double>(g, cptr<double>(x), cptr<double>(ahy), cptr<double>(maps), mask.data_ptr<double>(),
                                  step.data_ptr<double>(), stride, cptr<double>(out), ex);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CPU, m) { m.impl("dc_gradient_step", &dc_gradient_step_cpu); }

}  // namespace gleam::ops
