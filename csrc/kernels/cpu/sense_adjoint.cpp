#include <cmath>

#include "kernels/cpu/sense.h"

namespace gleam::cpu {

template <typename T>
void sense_adjoint(const SenseGeometry& g, const std::complex<T>* y, const std::complex<T>* maps, const T* mask,
                   std::complex<T>* x, const Executor& ex) {
  using namespace detail;
  const Layout<T> L(g, T(1) / std::sqrt(T(g.fft_size())), T(1));
  for_each_block(L, ex, [&](int64_t o, Workspace<T>& ws, const Inner& in) {
    const auto r = L.bases(o);
    T* mblk = ws.mask.template as<T>();
    in(L.rows, 16, [&](int64_t r0, int64_t r1) {
      fill_mask(L, r, mask, false, mblk, r0, r1);
      init_image<T>(L, r, nullptr, nullptr, T(0), x, r0, r1);
    });
    auto group = [&](auto tag, int64_t c0, int la) {
      using V = decltype(tag);
      auto* buf = ws.buf.template as<simd::CVec<V>>();
      in(L.rows, 16, [&](int64_t r0, int64_t r1) { gather_kspace<T, V>(L, r, c0, la, y, mblk, buf, r0, r1); });
      Passes<T, V>::inverse(L, in, mblk, buf, /*prune_first=*/true);
      in(L.rows, 16,
         [&](int64_t r0, int64_t r1) { combine_image<T, V>(L, r, c0, la, maps, buf, L.scale_out, x, r0, r1); });
    };
    for_each_group<T>(g.coils, group);
  });
}

template void sense_adjoint<float>(const SenseGeometry&, const std::complex<float>*, const std::complex<float>*,
                                   const float*, std::complex<float>*, const Executor&);
template void sense_adjoint<double>(const SenseGeometry&, const std::complex<double>*, const std::complex<double>*,
                                    const double*, std::complex<double>*, const Executor&);

}  // namespace gleam::cpu
