// Naive reference SENSE operators (direct centered DFT sums in long double) and
// random problem builders for the kernel tests.
#pragma once

#include <cmath>
#include <complex>
#include <random>
#include <thread>
#include <vector>

#include "kernels/cpu/pipeline.h"
#include "kernels/geometry.h"

namespace gleam::testing {

// One SENSE test problem: batch B, C coils, M map sets over dims n (fft: which are
// transformed), a mask of dims mask_n (per batch element or shared), maps shared over batch.
struct Case {
  const char* name;
  int64_t B, C, M;
  std::vector<int64_t> n;
  std::vector<bool> fft;
  std::vector<int64_t> mask_n;
  bool mask_batch, maps_bcast0;
};


using cld = std::complex<long double>;

template <typename T> struct Problem {
  SenseGeometry g;
  std::vector<std::complex<T>> x, maps, y;
  std::vector<T> mask;
};

inline SenseGeometry make_geometry(int64_t B, int64_t C, int64_t M, std::vector<int64_t> n, std::vector<bool> fft,
                                   std::vector<int64_t> mask_n, bool mask_batch = false, bool maps_bcast0 = false) {
  SenseGeometry g;
  g.batch = B;
  g.coils = C;
  g.sets = M;
  for (int a = 0; a < 3; ++a) {
    g.n[a] = n[a];
    g.fft[a] = fft[a];
    g.mask_n[a] = mask_n[a];
  }
  g.mask_batch = mask_batch;
  g.maps_bcast0 = maps_bcast0;
  return g;
}

template <typename T> Problem<T> random_problem(const SenseGeometry& g, unsigned seed, double keep = 0.5) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud;
  Problem<T> p;
  p.g = g;
  auto fill = [&](std::vector<std::complex<T>>& v, int64_t count) {
    v.resize(size_t(count));
    for (auto& e : v) e = {T(nd(rng)), T(nd(rng))};
  };
  fill(p.x, g.batch * g.sets * g.spatial());
  fill(p.maps, (g.maps_batch_bcast ? 1 : g.batch) * g.coils * g.sets * g.maps_spatial());
  fill(p.y, g.batch * g.coils * g.spatial());
  p.mask.resize(size_t((g.mask_batch ? g.batch : 1) * g.mask_spatial()));
  for (auto& m : p.mask) m = ud(rng) < keep ? T(1) : T(0);
  if (!p.mask.empty()) p.mask[0] = T(1);
  return p;
}

// Centered orthonormal DFT (fastMRI fft2c) along the flagged axes of one (n0, n1, n2) array.
inline std::vector<cld> naive_cdft(const std::vector<cld>& in, const int64_t n[3], const bool axes[3], bool inverse) {
  std::vector<cld> cur = in;
  const long double two_pi = 6.283185307179586476925286766559L;
  for (int a = 0; a < 3; ++a) {
    if (!axes[a]) continue;
    std::vector<cld> out(cur.size());
    const int64_t st = a == 2 ? 1 : (a == 1 ? n[2] : n[1] * n[2]);
    const int64_t h = n[a] / 2;
    const long double sgn = inverse ? 1 : -1;
    for (int64_t i = 0; i < int64_t(cur.size()); ++i) {
      const int64_t k = (i / st) % n[a];
      const int64_t base = i - k * st;
      cld acc = 0;
      for (int64_t j = 0; j < n[a]; ++j) {
        long double ang = sgn * two_pi * static_cast<long double>((j - h) * (k - h)) / n[a];
        acc += cur[size_t(base + j * st)] * cld(std::cos(ang), std::sin(ang));
      }
      out[size_t(i)] = acc / std::sqrt(static_cast<long double>(n[a]));
    }
    cur.swap(out);
  }
  return cur;
}

template <typename T> long double mask_at(const Problem<T>& p, int64_t b, int64_t i0, int64_t i1, int64_t i2) {
  const auto& g = p.g;
  int64_t k0 = g.mask_n[0] > 1 ? i0 : 0, k1 = g.mask_n[1] > 1 ? i1 : 0, k2 = g.mask_n[2] > 1 ? i2 : 0;
  int64_t off = ((g.mask_batch ? b : 0) * g.mask_n[0] + k0) * g.mask_n[1] * g.mask_n[2] + k1 * g.mask_n[2] + k2;
  return p.mask[size_t(off)];
}

template <typename T> std::complex<T> map_at(const Problem<T>& p, int64_t b, int64_t c, int64_t m, int64_t s) {
  const auto& g = p.g;
  const int64_t i0 = s / (g.n[1] * g.n[2]), rest = s % (g.n[1] * g.n[2]);
  const int64_t sm = (g.maps_bcast0 ? 0 : i0) * g.n[1] * g.n[2] + rest;
  const int64_t bm = g.maps_batch_bcast ? 0 : b;
  return p.maps[size_t(((bm * g.coils + c) * g.sets + m) * g.maps_spatial() + sm)];
}

// y = mask * F(maps x) over `axes`.
template <typename T> std::vector<cld> naive_forward(const Problem<T>& p, const bool axes[3]) {
  const auto& g = p.g;
  const int64_t S = g.spatial();
  std::vector<cld> y(static_cast<size_t>(g.batch * g.coils * S));
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t c = 0; c < g.coils; ++c) {
      std::vector<cld> img(size_t(S), 0);
      for (int64_t m = 0; m < g.sets; ++m)
        for (int64_t s = 0; s < S; ++s)
          img[size_t(s)] += cld(map_at(p, b, c, m, s)) * cld(p.x[size_t((b * g.sets + m) * S + s)]);
      auto k = naive_cdft(img, g.n, axes, false);
      for (int64_t s = 0; s < S; ++s) {
        int64_t i0 = s / (g.n[1] * g.n[2]), i1 = (s / g.n[2]) % g.n[1], i2 = s % g.n[2];
        y[size_t((b * g.coils + c) * S + s)] = k[size_t(s)] * mask_at(p, b, i0, i1, i2);
      }
    }
  return y;
}

// x = sum_c conj(maps) F^H(mask * y) over `axes`.
template <typename T>
std::vector<cld> naive_adjoint(const Problem<T>& p, const std::vector<cld>& y, const bool axes[3]) {
  const auto& g = p.g;
  const int64_t S = g.spatial();
  std::vector<cld> x(size_t(g.batch * g.sets * S), 0);
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t c = 0; c < g.coils; ++c) {
      std::vector<cld> k(static_cast<size_t>(S));
      for (int64_t s = 0; s < S; ++s) {
        int64_t i0 = s / (g.n[1] * g.n[2]), i1 = (s / g.n[2]) % g.n[1], i2 = s % g.n[2];
        k[size_t(s)] = y[size_t((b * g.coils + c) * S + s)] * mask_at(p, b, i0, i1, i2);
      }
      auto img = naive_cdft(k, g.n, axes, true);
      for (int64_t m = 0; m < g.sets; ++m)
        for (int64_t s = 0; s < S; ++s)
          x[size_t((b * g.sets + m) * S + s)] += std::conj(cld(map_at(p, b, c, m, s))) * img[size_t(s)];
    }
  return x;
}

template <typename A, typename B> double rel_error(const std::vector<A>& got, const std::vector<B>& ref) {
  long double e = 0, r = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    cld gv(got[i]), rv(ref[i]);
    e += std::norm(gv - rv);
    r += std::norm(rv);
  }
  return static_cast<double>(std::sqrt(e / r));
}

template <typename T> std::vector<cld> to_ld(const std::vector<std::complex<T>>& v) {
  return std::vector<cld>(v.begin(), v.end());
}

// A real multi-threaded executor (std::thread) so the tests see the parallel paths.
inline cpu::Executor thread_executor(int threads) {
  cpu::Executor e;
  e.threads = threads;
  e.pfor = [threads](int64_t b, int64_t en, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
    const int64_t n = en - b;
    if (n <= 0) return;
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n / std::max<int64_t>(grain, 1)));
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < parts; ++t) {
      const int64_t s = b + n * t / parts, e2 = b + n * (t + 1) / parts;
      pool.emplace_back([&f, s, e2] { f(s, e2); });
    }
    for (auto& th : pool) th.join();
  };
  return e;
}

}  // namespace gleam::testing
