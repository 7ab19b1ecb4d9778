#include "kernels/cpu/sense.h"

namespace gleam::cpu {

namespace detail {

template <typename T>
void normal_impl(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* maps, const T* mask,
                 std::complex<T>* out, const Executor& ex, const uint8_t* active, const std::complex<T>* ahy,
                 const T* step, int64_t step_stride) {
  // Orthonormal forward and inverse scales combine into 1/N, applied once on the way in.
  const Layout<T> L(g, T(1) / T(g.fft_size()), T(1));
  for_each_block(L, ex, [&](int64_t o, Workspace<T>& ws, const Inner& in) {
    const auto r = L.bases(o);
    if (active && !active[r.b]) return;
    const T s = step ? step[r.b * step_stride] : T(0);
    const T combine_scale = step ? -s : T(1);
    T* mblk = ws.mask.template as<T>();
    in(L.rows, 16, [&](int64_t r0, int64_t r1) {
      fill_mask(L, r, mask, /*square=*/true, mblk, r0, r1);
      init_image<T>(L, r, step ? x : nullptr, ahy, s, out, r0, r1);
    });
    for_each_group<T>(g.coils, [&](auto tag, int64_t c0, int la) {
      using V = decltype(tag);
      auto* buf = ws.buf.template as<simd::CVec<V>>();
      in(L.rows, 16, [&](int64_t r0, int64_t r1) { gather_image<T, V>(L, r, c0, la, x, maps, buf, r0, r1); });
      Passes<T, V>::normal(L, in, mblk, buf);
      in(L.rows, 16,
         [&](int64_t r0, int64_t r1) { combine_image<T, V>(L, r, c0, la, maps, buf, combine_scale, out, r0, r1); });
    });
  });
}

template void normal_impl<float>(const SenseGeometry&, const std::complex<float>*, const std::complex<float>*,
                                 const float*, std::complex<float>*, const Executor&, const uint8_t*,
                                 const std::complex<float>*, const float*, int64_t);
template void normal_impl<double>(const SenseGeometry&, const std::complex<double>*, const std::complex<double>*,
                                  const double*, std::complex<double>*, const Executor&, const uint8_t*,
                                  const std::complex<double>*, const double*, int64_t);

}  // namespace detail

template <typename T>
void sense_normal(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* maps, const T* mask,
                  std::complex<T>* out, const Executor& ex, const uint8_t* active) {
  detail::normal_impl<T>(g, x, maps, mask, out, ex, active, nullptr, nullptr, 0);
}

template void sense_normal<float>(const SenseGeometry&, const std::complex<float>*, const std::complex<float>*,
                                  const float*, std::complex<float>*, const Executor&, const uint8_t*);
template void sense_normal<double>(const SenseGeometry&, const std::complex<double>*, const std::complex<double>*,
                                   const double*, std::complex<double>*, const Executor&, const uint8_t*);

}  // namespace gleam::cpu
