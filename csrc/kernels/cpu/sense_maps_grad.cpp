// Maps gradients of the SENSE operators (see sense.h): the coil images are rebuilt block by
// block in the per-thread buffer, as in the forward ops, and multiplied into the output.
#include <cmath>

#include "kernels/cpu/sense.h"

namespace gleam::cpu {

template <typename T>
void sense_maps_grad(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* y, const T* mask,
                     std::complex<T>* out, const Executor& ex) {
  using namespace detail;
  const Layout<T> L(g, T(1) / std::sqrt(T(g.fft_size())), T(1));
  for_each_block(L, ex, [&](int64_t o, Workspace<T>& ws, const Inner& in) {
    const auto r = L.bases(o);
    T* mblk = ws.mask.template as<T>();
    in(L.rows, 16, [&](int64_t r0, int64_t r1) { fill_mask(L, r, mask, false, mblk, r0, r1); });
    for_each_group<T>(g.coils, [&](auto tag, int64_t c0, int la) {
      using V = decltype(tag);
      auto* buf = ws.buf.template as<simd::CVec<V>>();
      in(L.rows, 16, [&](int64_t r0, int64_t r1) { gather_kspace<T, V>(L, r, c0, la, y, mblk, buf, r0, r1); });
      Passes<T, V>::inverse(L, in, mblk, buf, /*prune_first=*/true);
      in(L.rows, 16, [&](int64_t r0, int64_t r1) {
        outer_maps<T, V>(L, r, c0, la, x, buf, L.scale_out, /*accumulate=*/false, out, r0, r1);
      });
    });
  });
}

template <typename T>
void sense_normal_maps_grad(const SenseGeometry& g, const std::complex<T>* x, const std::complex<T>* gr,
                            const std::complex<T>* maps, const T* mask, std::complex<T>* out, const Executor& ex) {
  using namespace detail;
  // As in normal_impl: the orthonormal scales of the transform pair combine into 1/N.
  const Layout<T> L(g, T(1) / T(g.fft_size()), T(1));
  for_each_block(L, ex, [&](int64_t o, Workspace<T>& ws, const Inner& in) {
    const auto r = L.bases(o);
    T* mblk = ws.mask.template as<T>();
    in(L.rows, 16, [&](int64_t r0, int64_t r1) { fill_mask(L, r, mask, /*square=*/true, mblk, r0, r1); });
    for_each_group<T>(g.coils, [&](auto tag, int64_t c0, int la) {
      using V = decltype(tag);
      auto* buf = ws.buf.template as<simd::CVec<V>>();
      // Two terms, one buffer: N_c g paired with conj(x), then N_c x paired with conj(g).
      const std::complex<T>* expand[2] = {gr, x};
      const std::complex<T>* pair[2] = {x, gr};
      for (int t = 0; t < 2; ++t) {
        in(L.rows, 16,
           [&](int64_t r0, int64_t r1) { gather_image<T, V>(L, r, c0, la, expand[t], maps, buf, r0, r1); });
        Passes<T, V>::normal(L, in, mblk, buf);
        in(L.rows, 16, [&](int64_t r0, int64_t r1) {
          outer_maps<T, V>(L, r, c0, la, pair[t], buf, L.scale_out, /*accumulate=*/t == 1, out, r0, r1);
        });
      }
    });
  });
}

#define GLEAM_INSTANTIATE(T)                                                                                       \
  template void sense_maps_grad<T>(const SenseGeometry&, const std::complex<T>*, const std::complex<T>*, const T*, \
                                   std::complex<T>*, const Executor&);                                             \
  template void sense_normal_maps_grad<T>(const SenseGeometry&, const std::complex<T>*, const std::complex<T>*,    \
                                          const std::complex<T>*, const T*, std::complex<T>*, const Executor&);
GLEAM_INSTANTIATE(float)
GLEAM_INSTANTIATE(double)
#undef GLEAM_INSTANTIATE

}  // namespace gleam::cpu
