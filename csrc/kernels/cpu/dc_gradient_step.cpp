#include "kernels/cpu/sense.h"

namespace gleam::cpu {

template <typename T>
void dc_gradient_step(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* ahy,
                      const std::complex<T>* maps, const T* mask, const T* step, int64_t step_stride,
                      std::complex<T>* out, const Executor& ex) {
  detail::normal_impl<T>(g, x, maps, mask, out, ex, nullptr, ahy, step, step_stride);
}

template void dc_gradient_step<float>(const SenseGeometry&, const std::complex<float>*, const std::complex<float>*,
                                      const std::complex<float>*, const float*, const float*, int64_t,
                                      std::complex<float>*, const Executor&);
template void dc_gradient_step<double>(const SenseGeometry&, const std::complex<double>*,
                                       const std::complex<double>*, const std::complex<double>*, const double*,
                                       const double*, int64_t, std::complex<double>*, const Executor&);

}  // namespace gleam::cpu
