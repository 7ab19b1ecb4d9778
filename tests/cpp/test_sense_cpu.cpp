// Fused CPU SENSE kernels against naive loops (direct centered DFT sums), adjointness,
// readout decoupling, the DC step, CG, and serial == multi-threaded execution.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

#include "kernels/cpu/sense.h"
#include "kernels/cpu/thread_pool.h"
#include "sense_test_util.h"

using namespace gleam;
using namespace gleam::testing;

namespace {

const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"2d_even_1dmask", 2, 3, 1, {1, 6, 8}, {false, true, true}, {1, 1, 8}, false, false},
      {"2d_odd_2dmask_M2", 1, 11, 2, {1, 7, 5}, {false, true, true}, {1, 7, 5}, false, false},
      {"2d_batchmask_16coils", 2, 16, 1, {1, 5, 6}, {false, true, true}, {1, 5, 6}, true, false},
      {"3d_2dmask", 1, 9, 1, {4, 6, 5}, {true, true, true}, {1, 6, 5}, false, false},
      {"3d_odd_full_mask", 2, 4, 2, {3, 5, 7}, {true, true, true}, {3, 5, 7}, true, false},
      {"cine_frame_masks", 2, 5, 1, {3, 6, 4}, {false, true, true}, {3, 1, 4}, true, true},
  };
  return c;
}

SenseGeometry geometry(const Case& c) {
  return make_geometry(c.B, c.C, c.M, c.n, c.fft, c.mask_n, c.mask_batch, c.maps_bcast0);
}

// The axes readout decoupling keeps: FFT axes along which the mask varies.
SenseGeometry decoupled(SenseGeometry g) {
  for (int a = 0; a < 3; ++a) g.fft[a] = g.fft[a] && g.mask_n[a] > 1;
  return g;
}

template <typename T> double tol() { return sizeof(T) == 4 ? 3e-6 : 1e-12; }

template <typename T> class SenseCpu : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(SenseCpu, Types);

}  // namespace

TYPED_TEST(SenseCpu, ForwardMatchesNaive) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(geometry(c), 11);
    std::vector<std::complex<T>> y(p.y.size(), std::complex<T>(7, 7));
    cpu::sense_forward<T>(p.g, p.x.data(), p.maps.data(), p.mask.data(), y.data(), cpu::serial_executor());
    EXPECT_LT(rel_error(y, naive_forward(p, p.g.fft)), tol<T>()) << c.name;
  }
}

TYPED_TEST(SenseCpu, AdjointMatchesNaive) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(geometry(c), 12);
    std::vector<std::complex<T>> x(p.x.size(), std::complex<T>(7, 7));
    cpu::sense_adjoint<T>(p.g, p.y.data(), p.maps.data(), p.mask.data(), x.data(), cpu::serial_executor());
    EXPECT_LT(rel_error(x, naive_adjoint(p, to_ld(p.y), p.g.fft)), tol<T>()) << c.name;
  }
}

TYPED_TEST(SenseCpu, Adjointness) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(geometry(c), 13);
    std::vector<std::complex<T>> ax(p.y.size()), ahy(p.x.size());
    cpu::sense_forward<T>(p.g, p.x.data(), p.maps.data(), p.mask.data(), ax.data(), cpu::serial_executor());
    cpu::sense_adjoint<T>(p.g, p.y.data(), p.maps.data(), p.mask.data(), ahy.data(), cpu::serial_executor());
    cld lhs = 0, rhs = 0;
    long double nax = 0, ny = 0, nx = 0, nahy = 0;
    for (size_t i = 0; i < ax.size(); ++i) {
      lhs += std::conj(cld(p.y[i])) * cld(ax[i]);
      nax += std::norm(cld(ax[i]));
      ny += std::norm(cld(p.y[i]));
    }
    for (size_t i = 0; i < ahy.size(); ++i) {
      rhs += std::conj(cld(ahy[i])) * cld(p.x[i]);
      nx += std::norm(cld(p.x[i]));
      nahy += std::norm(cld(ahy[i]));
    }
    EXPECT_LT(double(std::abs(lhs - rhs) / std::sqrt(nax * ny)), sizeof(T) == 4 ? 1e-6 : 1e-14) << c.name;
    EXPECT_GT(double(nahy), 0.0);
  }
}

TYPED_TEST(SenseCpu, NormalFullAndDecoupledMatchNaive) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(geometry(c), 14);
    auto ref = naive_adjoint(p, naive_forward(p, p.g.fft), p.g.fft);
    std::vector<std::complex<T>> full(p.x.size()), dec(p.x.size());
    cpu::sense_normal<T>(p.g, p.x.data(), p.maps.data(), p.mask.data(), full.data(), cpu::serial_executor());
    cpu::sense_normal<T>(decoupled(p.g), p.x.data(), p.maps.data(), p.mask.data(), dec.data(),
                         cpu::serial_executor());
    EXPECT_LT(rel_error(full, ref), tol<T>()) << c.name;
    EXPECT_LT(rel_error(dec, ref), tol<T>()) << c.name << " (readout-decoupled)";
  }
}

TYPED_TEST(SenseCpu, NormalUsesMaskSquaredForWeights) {
  using T = TypeParam;
  const auto& c = cases()[0];
  auto p = random_problem<T>(geometry(c), 15);
  for (size_t i = 0; i < p.mask.size(); ++i) p.mask[i] = T(0.25) + T(i % 3);
  auto ref = naive_adjoint(p, naive_forward(p, p.g.fft), p.g.fft);  // each applies the mask once
  std::vector<std::complex<T>> out(p.x.size());
  cpu::sense_normal<T>(decoupled(p.g), p.x.data(), p.maps.data(), p.mask.data(), out.data(), cpu::serial_executor());
  EXPECT_LT(rel_error(out, ref), tol<T>());
}

TYPED_TEST(SenseCpu, DcGradientStep) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(geometry(c), 16);
    auto g = decoupled(p.g);
    std::vector<std::complex<T>> ahy(p.x.size()), nx(p.x.size()), out(p.x.size());
    cpu::sense_adjoint<T>(p.g, p.y.data(), p.maps.data(), p.mask.data(), ahy.data(), cpu::serial_executor());
    cpu::sense_normal<T>(g, p.x.data(), p.maps.data(), p.mask.data(), nx.data(), cpu::serial_executor());
    std::vector<T> step(static_cast<size_t>(c.B));
    for (int64_t b = 0; b < c.B; ++b) step[size_t(b)] = T(0.3) + T(0.5) * T(b);
    cpu::dc_gradient_step<T>(g, p.x.data(), ahy.data(), p.maps.data(), p.mask.data(), step.data(), 1, out.data(),
                             cpu::serial_executor());
    std::vector<cld> ref(p.x.size());
    const int64_t per = c.M * p.g.spatial();
    for (size_t i = 0; i < ref.size(); ++i) {
      const long double s = step[i / size_t(per)];
      ref[i] = cld(p.x[i]) - s * (cld(nx[i]) - cld(ahy[i]));
    }
    EXPECT_LT(rel_error(out, ref), tol<T>()) << c.name;
  }
}

TYPED_TEST(SenseCpu, ThreadedEqualsSerialBitwise) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(geometry(c), 17);
    for (bool dec : {false, true}) {
      auto g = dec ? decoupled(p.g) : p.g;
      std::vector<std::complex<T>> a(p.x.size()), b(p.x.size()), ya(p.y.size()), yb(p.y.size());
      cpu::sense_normal<T>(g, p.x.data(), p.maps.data(), p.mask.data(), a.data(), cpu::serial_executor());
      cpu::sense_normal<T>(g, p.x.data(), p.maps.data(), p.mask.data(), b.data(), thread_executor(3));
      EXPECT_EQ(a, b) << c.name;
      cpu::sense_forward<T>(p.g, p.x.data(), p.maps.data(), p.mask.data(), ya.data(), cpu::serial_executor());
      cpu::sense_forward<T>(p.g, p.x.data(), p.maps.data(), p.mask.data(), yb.data(), thread_executor(3));
      EXPECT_EQ(ya, yb) << c.name;
    }
  }
}

TYPED_TEST(SenseCpu, ConjugateGradientsSolvesRegularizedNormalEquations) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(geometry(c), 18);
    auto g = decoupled(p.g);
    const int64_t B = c.B, n = c.M * p.g.spatial();
    std::vector<T> lam(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) lam[size_t(b)] = T(0.5) + T(b);
    std::vector<std::complex<T>> x(p.x.size()), work(static_cast<size_t>(3 * B * n)), check(p.x.size());
    std::vector<T> resid(static_cast<size_t>(B));
    std::vector<int64_t> iters(static_cast<size_t>(B));
    cpu::cg_solve<T>(g, p.x.data(), p.maps.data(), p.mask.data(), lam.data(), 1, false, 200, 1e-5, x.data(),
                     work.data(), resid.data(), iters.data(), thread_executor(2));
    cpu::sense_normal<T>(g, x.data(), p.maps.data(), p.mask.data(), check.data(), cpu::serial_executor());
    for (int64_t b = 0; b < B; ++b) {
      long double e = 0, r = 0;
      for (int64_t i = b * n; i < (b + 1) * n; ++i) {
        e += std::norm(cld(check[size_t(i)]) + (long double)lam[size_t(b)] * cld(x[size_t(i)]) - cld(p.x[size_t(i)]));
        r += std::norm(cld(p.x[size_t(i)]));
      }
      EXPECT_LT(double(std::sqrt(e / r)), sizeof(T) == 4 ? 1e-4 : 1e-5) << c.name << " batch " << b;
      EXPECT_LE(double(resid[size_t(b)]), 1e-5) << c.name;
      EXPECT_GT(iters[size_t(b)], 0);
      EXPECT_LT(iters[size_t(b)], 200);
    }
  }
}

TYPED_TEST(SenseCpu, ConjugateGradientsZeroRightHandSideIgnoresWarmStart) {
  using T = TypeParam;
  const Case& c = cases()[0];  // B = 2: element 1 gets b = 0, element 0 a real system
  auto p = random_problem<T>(geometry(c), 19);
  auto g = decoupled(p.g);
  const int64_t B = c.B, n = c.M * p.g.spatial();
  std::fill(p.x.begin() + n, p.x.end(), std::complex<T>(0));
  auto x = random_problem<T>(geometry(c), 20).x;  // x0: nonzero everywhere
  std::vector<std::complex<T>> work(static_cast<size_t>(3 * B * n));
  std::vector<T> lam{T(0.5)}, resid(static_cast<size_t>(B));
  std::vector<int64_t> iters(static_cast<size_t>(B));
  cpu::cg_solve<T>(g, p.x.data(), p.maps.data(), p.mask.data(), lam.data(), 0, true, 5, 0.0, x.data(), work.data(),
                   resid.data(), iters.data(), cpu::serial_executor());
  for (int64_t i = n; i < 2 * n; ++i) ASSERT_EQ(x[size_t(i)], std::complex<T>(0)) << "index " << i;
  EXPECT_EQ(resid[1], T(0));
  EXPECT_EQ(iters[1], 0);
  EXPECT_EQ(iters[0], 5);
  EXPECT_GT(resid[0], T(0));
}

TEST(ThreadPool, CoversRangeOnceAndRunsNestedCallsSerially) {
  std::vector<std::atomic<int>> hits(1000);
  cpu::pool_parallel_for(0, 1000, 1, 4, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[size_t(i)]++;
    cpu::pool_parallel_for(0, 10, 1, 4, [&](int64_t, int64_t) {});  // nested: must not deadlock
  });
  for (auto& h : hits) EXPECT_EQ(h.load(), 1);
  EXPECT_THROW(cpu::pool_parallel_for(0, 100, 1, 3,
                                      [](int64_t b, int64_t) {
                                        if (b > 0) throw std::runtime_error("boom");
                                      }),
               std::runtime_error);
}

TYPED_TEST(SenseCpu, PoolExecutorEqualsSerialBitwise) {
  using T = TypeParam;
  for (const auto& c : cases()) {
    auto p = random_problem<T>(geometry(c), 19);
    std::vector<std::complex<T>> a(p.x.size()), b(p.x.size());
    cpu::sense_adjoint<T>(p.g, p.y.data(), p.maps.data(), p.mask.data(), a.data(), cpu::serial_executor());
    cpu::sense_adjoint<T>(p.g, p.y.data(), p.maps.data(), p.mask.data(), b.data(), cpu::pool_executor(2));
    EXPECT_EQ(a, b) << c.name;
  }
}
