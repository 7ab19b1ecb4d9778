// The lane-parallel FFT against a naive O(n^2) DFT in long double, for sizes that
// exercise every butterfly (4, 2, 3, 5, 7, generic odd primes) and both directions.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <random>
#include <vector>

#include "kernels/fft.h"

using namespace gleam;

namespace {

template <typename V> double max_rel_error(int n, bool inverse, unsigned seed) {
  using T = simd::scalar_t<V>;
  constexpr int L = simd::lanes_v<V>;
  std::mt19937 rng(seed);
  std::normal_distribution<double> dist;
  std::vector<std::complex<long double>> ref_in(size_t(n) * L);
  for (auto& v : ref_in) v = {dist(rng), dist(rng)};

  fft::Plan<T> plan(n);
  std::vector<simd::CVec<V>> data(n), work(plan.work_size());
  for (int j = 0; j < n; ++j)
    for (int l = 0; l < L; ++l) {
      data[j].re[l] = static_cast<T>(ref_in[size_t(j) * L + l].real());
      data[j].im[l] = static_cast<T>(ref_in[size_t(j) * L + l].imag());
    }
  fft::transform<V>(plan, inverse, data.data(), work.data());

  // Twiddles exp(-+2 pi i r / n) for every residue r = j*k mod n, in long double.
  const long double two_pi = 6.283185307179586476925286766559L;
  std::vector<std::complex<long double>> twiddle(n);
  for (int r = 0; r < n; ++r) {
    long double a = (inverse ? two_pi : -two_pi) * r / n;
    twiddle[r] = {std::cos(a), std::sin(a)};
  }
  double err2 = 0, ref2 = 0;
  for (int l = 0; l < L; ++l)
    for (int k = 0; k < n; ++k) {
      std::complex<long double> acc = 0;
      for (int j = 0; j < n; ++j) acc += ref_in[size_t(j) * L + l] * twiddle[(static_cast<long long>(j) * k) % n];
      std::complex<long double> got(data[k].re[l], data[k].im[l]);
      err2 += static_cast<double>(std::norm(got - acc));
      ref2 += static_cast<double>(std::norm(acc));
    }
  return std::sqrt(err2 / ref2);
}

const int kSizes[] = {1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 20, 23, 25, 27, 30, 49, 64,
                      80, 97, 121, 160, 192, 256, 320, 368, 369, 372, 640};

}  // namespace

TEST(Fft, Factorization) {
  EXPECT_EQ(fft::factorize(368), (std::vector<int>{4, 4, 23}));
  EXPECT_EQ(fft::factorize(320), (std::vector<int>{4, 4, 4, 5}));
  EXPECT_EQ(fft::factorize(1), (std::vector<int>{}));
  for (int n : kSizes) {
    int prod = 1;
    for (int f : fft::factorize(n)) prod *= f;
    EXPECT_EQ(prod, n);
  }
}

TEST(Fft, Float32MatchesNaiveDft) {
  for (int n : kSizes)
    for (bool inv : {false, true}) {
      EXPECT_LT(max_rel_error<simd::f32x8>(n, inv, 1 + n), 2e-6) << "n=" << n << " inverse=" << inv;
      EXPECT_LT(max_rel_error<simd::f32x4>(n, inv, 2 + n), 2e-6) << "n=" << n << " inverse=" << inv;
    }
}

TEST(Fft, Float64MatchesNaiveDft) {
  for (int n : kSizes)
    for (bool inv : {false, true}) {
      EXPECT_LT(max_rel_error<simd::f64x4>(n, inv, 3 + n), 1e-13) << "n=" << n << " inverse=" << inv;
      EXPECT_LT(max_rel_error<simd::f64x2>(n, inv, 4 + n), 1e-13) << "n=" << n << " inverse=" << inv;
    }
}
