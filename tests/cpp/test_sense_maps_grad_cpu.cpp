// Maps-gradient CPU kernels (sense_maps_grad, sense_normal_maps_grad) against naive loops
// (direct centered DFT sums in long double), full and readout-decoupled, serial and threaded.
// Outputs have the unbroadcast maps layout (B, C, M, *S).
#include <gtest/gtest.h>

#include "kernels/cpu/sense.h"
#include "sense_test_util.h"

using namespace gleam;
using namespace gleam::testing;

namespace {

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"2d_even_1dmask", 2, 3, 1, {1, 6, 8}, {false, true, true}, {1, 1, 8}, false, false},
      {"2d_odd_2dmask_M2", 1, 11, 2, {1, 7, 5}, {false, true, true}, {1, 7, 5}, false, false},
      {"3d_2dmask", 1, 9, 1, {4, 6, 5}, {true, true, true}, {1, 6, 5}, false, false},
      {"cine_frame_masks", 2, 5, 1, {3, 6, 4}, {false, true, true}, {3, 1, 4}, true, true},
  };
  return c;
}

SenseGeometry decoupled(SenseGeometry g) {
  for (int a = 0; a < 3; ++a) g.fft[a] = g.fft[a] && g.mask_n[a] > 1;
  return g;
}

template <typename T> double tol() { return sizeof(T) == 4 ? 3e-6 : 1e-12; }

// coil[b, c] = F^H(mask^power * k[b, c]) over `axes`.
template <typename T>
std::vector<cld> naive_coil_images(const Problem<T>& p, const std::vector<cld>& k, const bool axes[3], int power) {
  const auto& g = p.g;
  const int64_t S = g.spatial();
  std::vector<cld> out(k.size());
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t c = 0; c < g.coils; ++c) {
      std::vector<cld> line(static_cast<size_t>(S));
      for (int64_t s = 0; s < S; ++s) {
        int64_t i0 = s / (g.n[1] * g.n[2]), i1 = (s / g.n[2]) % g.n[1], i2 = s % g.n[2];
        long double w = mask_at(p, b, i0, i1, i2);
        line[size_t(s)] = k[size_t((b * g.coils + c) * S + s)] * (power == 2 ? w * w : w);
      }
      auto img = naive_cdft(line, g.n, axes, true);
      std::copy(img.begin(), img.end(), out.begin() + (b * g.coils + c) * S);
    }
  return out;
}

// out[b, c, m] (+)= conj(u[b, m]) * coil[b, c].
template <typename T>
void naive_outer(const SenseGeometry& g, const std::vector<std::complex<T>>& u, const std::vector<cld>& coil,
                 std::vector<cld>& out) {
  const int64_t S = g.spatial();
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t c = 0; c < g.coils; ++c)
      for (int64_t m = 0; m < g.sets; ++m)
        for (int64_t s = 0; s < S; ++s)
          out[size_t(((b * g.coils + c) * g.sets + m) * S + s)] +=
              std::conj(cld(u[size_t((b * g.sets + m) * S + s)])) * coil[size_t((b * g.coils + c) * S + s)];
}

template <typename T> class MapsGradCpu : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(MapsGradCpu, Types);

}  // namespace

TYPED_TEST(MapsGradCpu, MapsGradMatchesNaive) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(make_geometry(c.B, c.C, c.M, c.n, c.fft, c.mask_n, c.mask_batch, c.maps_bcast0), 21);
    const size_t full = size_t(c.B * c.C * c.M * p.g.spatial());
    std::vector<cld> ref(full, 0);
    naive_outer(p.g, p.x, naive_coil_images(p, to_ld(p.y), p.g.fft, 1), ref);
    for (int threads : {1, 3}) {
      std::vector<std::complex<T>> out(full, std::complex<T>(7, 7));
      cpu::sense_maps_grad<T>(p.g, p.x.data(), p.y.data(), p.mask.data(), out.data(),
                              threads == 1 ? cpu::serial_executor() : thread_executor(threads));
      EXPECT_LT(rel_error(out, ref), tol<T>()) << c.name << " threads " << threads;
    }
  }
}

TYPED_TEST(MapsGradCpu, NormalMapsGradMatchesNaiveFullAndDecoupled) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(make_geometry(c.B, c.C, c.M, c.n, c.fft, c.mask_n, c.mask_batch, c.maps_bcast0), 22);
    auto q = p;  // q.x = g, the output gradient
    for (auto& v : q.x) v = std::complex<T>(v.imag() - T(0.5), v.real());
    const size_t full = size_t(c.B * c.C * c.M * p.g.spatial());
    std::vector<cld> ref(full, 0);
    // conj(x) F^H mask^2 F(maps g) + conj(g) F^H mask^2 F(maps x); naive_forward applies the mask once.
    auto unmasked = [&](const Problem<T>& pr) {
      auto k = naive_forward(pr, pr.g.fft);  // mask * F(maps u)
      return naive_coil_images(pr, k, pr.g.fft, 1);
    };
    naive_outer(p.g, p.x, unmasked(q), ref);
    naive_outer(p.g, q.x, unmasked(p), ref);
    for (bool dec : {false, true}) {
      const SenseGeometry g = dec ? decoupled(p.g) : p.g;
      for (int threads : {1, 3}) {
        std::vector<std::complex<T>> out(full, std::complex<T>(7, 7));
        cpu::sense_normal_maps_grad<T>(g, p.x.data(), q.x.data(), p.maps.data(), p.mask.data(), out.data(),
                                       threads == 1 ? cpu::serial_executor() : thread_executor(threads));
        EXPECT_LT(rel_error(out, ref), tol<T>()) << c.name << (dec ? " decoupled" : "") << " threads " << threads;
      }
    }
  }
}
