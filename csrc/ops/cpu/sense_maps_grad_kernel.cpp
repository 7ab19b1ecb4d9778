#include <torch/library.h>

#include "kernels/cpu/sense.h"
#include "ops/common.h"
#include "ops/cpu/aten_executor.h"

namespace gleam::ops {
namespace {

at::Tensor sense_maps_grad_cpu(const at::Tensor& x, const at::Tensor& y, const at::Tensor& maps, const at::Tensor& mask,
                               at::IntArrayRef fft_dims, int64_t /*coil_chunk*/) {
  const SenseGeometry g = check_maps_grad("sense_maps_grad", x, y, /*second_is_kspace=*/true, maps, mask, fft_dims);
  at::Tensor out = full_maps_grad(x, maps);
  const auto ex = aten_executor();
  if (x.scalar_type() == at::kComplexFloat)
    cpu::sense_maps_grad<float>(g, cptr<float>(x), cptr<float>(y), mask.data_ptr<float>(), cptr<float>(out), ex);
  else
    cpu::sense_maps_grad<double>(g, cptr<double>(x), cptr<double>(y), mask.data_ptr<double>(), cptr<double>(out), ex);
  return reduce_to_maps(out, maps);
}

at::Tensor sense_normal_maps_grad_cpu(const at::Tensor& x, const at::Tensor& gr, const at::Tensor& maps,
                                      const at::Tensor& mask, at::IntArrayRef fft_dims, int64_t /*coil_chunk*/) {
  const SenseGeometry g =
      check_maps_grad("sense_normal_maps_grad", x, gr, /*second_is_kspace=*/false, maps, mask, fft_dims);
  at::Tensor out = full_maps_grad(x, maps);
  const auto ex = aten_executor();
  if (x.scalar_type() == at::kComplexFloat)
    cpu::sense_normal_maps_grad<float>(g, cptr<float>(x), cptr<float>(gr), cptr<float>(maps), mask.data_ptr<float>(),
                                       cptr<float>(out), ex);
  else
    cpu::sense_normal_maps_grad<double>(g, cptr<double>(x), cptr<double>(gr), cptr<double>(maps),
                                        mask.data_ptr<double>(), cptr<double>(out), ex);
  return reduce_to_maps(out, maps);
}

}  // namespace

TORCH_LIBRARY_IMPL(gleam, CPU, m) {
  m.impl("sense_maps_grad", &sense_maps_grad_cpu);
  m.impl("sense_normal_maps_grad", &sense_normal_maps_grad_cpu);
}

}  // namespace gleam::ops
