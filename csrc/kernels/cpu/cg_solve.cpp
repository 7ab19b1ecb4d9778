#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/sense.h"

namespace gleam::cpu {

namespace {
// Fixed-size chunks make every reduction independent of the thread count, so a
// result is bit-identical however many threads run it (resumed training relies on it).
constexpr int64_t kChunk = 16384;
}  // namespace

template <typename T>
void cg_solve(const SenseGeometry& g, const std::complex<T>* b, const std::complex<T>* maps, const T* mask,
              const T* lam, int64_t lam_stride, bool has_x0, int64_t iters, double tol, std::complex<T>* x,
              std::complex<T>* work, T* resid, int64_t* iters_done, const Executor& ex) {
  using C = std::complex<T>;
  const int64_t B = g.batch, n = g.sets * g.spatial();
  const int64_t nch = (n + kChunk - 1) / kChunk;
  C* r = work;
  C* p = work + B * n;
  C* Ap = work + 2 * B * n;
  std::vector<double> partial(size_t(B * nch)), rs(B), bnorm(B), alpha(B), beta(B);
  std::vector<uint8_t> active(B, 1);

  // fn(batch, task, begin, end) over the chunks of active batch elements.
  auto each = [&](auto&& fn) {
    ex.pfor(0, B * nch, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t bi = t / nch;
        if (!active[bi]) continue;
        const int64_t i0 = (t % nch) * kChunk;
        fn(bi, t, bi * n + i0, bi * n + std::min(n, i0 + kChunk));
      }
    });
  };
  auto reduce = [&](int64_t bi) {
    double s = 0;
    for (int64_t c = 0; c < nch; ++c) s += partial[size_t(bi * nch + c)];
    return s;
  };
  // out = (A^H A + lam I) v for the active batch elements.
  auto apply = [&](const C* v, C* out) {
    detail::normal_impl<T>(g, v, maps, mask, out, ex, active.data(), nullptr, nullptr, 0);
    each([&](int64_t bi, int64_t, int64_t i0, int64_t i1) {
      const T l = lam[bi * lam_stride];
      for (int64_t i = i0; i < i1; ++i) out[i] += l * v[i];
    });
  };

  if (has_x0) {
    apply(x, Ap);
    each([&](int64_t, int64_t, int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) r[i] = b[i] - Ap[i];
    });
  } else {
    each([&](int64_t, int64_t, int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        x[i] = C(0);
        r[i] = b[i];
      }
    });
  }
  each([&](int64_t, int64_t t, int64_t i0, int64_t i1) {
    double s = 0;
    for (int64_t i = i0; i < i1; ++i) {
      p[i] = r[i];
      s += std::norm(r[i]);
    }
    partial[size_t(t)] = s;
  });
  for (int64_t bi = 0; bi < B; ++bi) rs[bi] = reduce(bi);
  each([&](int64_t, int64_t t, int64_t i0, int64_t i1) {
    double s = 0;
    for (int64_t i = i0; i < i1; ++i) s += std::norm(b[i]);
    partial[size_t(t)] = s;
  });
  for (int64_t bi = 0; bi < B; ++bi) {
    bnorm[bi] = std::sqrt(reduce(bi));
    iters_done[bi] = 0;
    active[bi] = bnorm[bi] > 0 && (tol <= 0 || std::sqrt(rs[bi]) > tol * bnorm[bi]);
    // b = 0: x = 0 solves the system exactly (the minimum-norm solution when lam = 0), whatever x0 was.
    if (bnorm[bi] == 0 && has_x0) std::fill(x + bi * n, x + (bi + 1) * n, C(0));
  }

  for (int64_t it = 0; it < iters; ++it) {
    bool any = false;
    for (int64_t bi = 0; bi < B; ++bi) any = any || active[bi];
    if (!any) break;
    apply(p, Ap);
    each([&](int64_t, int64_t t, int64_t i0, int64_t i1) {
      double s = 0;
      for (int64_t i = i0; i < i1; ++i) s += double(p[i].real()) * Ap[i].real() + double(p[i].imag()) * Ap[i].imag();
      partial[size_t(t)] = s;
    });
    for (int64_t bi = 0; bi < B; ++bi) {
      if (!active[bi]) continue;
      const double pAp = reduce(bi);
      if (!(pAp > 0)) {  // breakdown (r == 0 exactly, or an indefinite system): stop this element
        active[bi] = 0;
        continue;
      }
      alpha[bi] = rs[bi] / pAp;
    }
    each([&](int64_t bi, int64_t t, int64_t i0, int64_t i1) {
      const T a = static_cast<T>(alpha[bi]);
      double s = 0;
      for (int64_t i = i0; i < i1; ++i) {
        x[i] += a * p[i];
        r[i] -= a * Ap[i];
        s += std::norm(r[i]);
      }
      partial[size_t(t)] = s;
    });
    for (int64_t bi = 0; bi < B; ++bi) {
      if (!active[bi]) continue;
      const double rs_new = reduce(bi);
      beta[bi] = rs[bi] > 0 ? rs_new / rs[bi] : 0.0;
      rs[bi] = rs_new;
      iters_done[bi] = it + 1;
      if (tol > 0 && std::sqrt(rs_new) <= tol * bnorm[bi]) active[bi] = 0;
    }
    each([&](int64_t bi, int64_t, int64_t i0, int64_t i1) {
      const T be = static_cast<T>(beta[bi]);
      for (int64_t i = i0; i < i1; ++i) p[i] = r[i] + be * p[i];
    });
  }
  for (int64_t bi = 0; bi < B; ++bi) resid[bi] = static_cast<T>(bnorm[bi] > 0 ? std::sqrt(rs[bi]) / bnorm[bi] : 0.0);
}

template void cg_solve<float>(const SenseGeometry&, const std::complex<float>*, const std::complex<float>*,
                              const float*, const float*, int64_t, bool, int64_t, double, std::complex<float>*,
                              std::complex<float>*, float*, int64_t*, const Executor&);
template void cg_solve<double>(const SenseGeometry&, const std::complex<double>*, const std::complex<double>*,
                               const double*, const double*, int64_t, bool, int64_t, double, std::complex<double>*,
                               std::complex<double>*, double*, int64_t*, const Executor&);

}  // namespace gleam::cpu
