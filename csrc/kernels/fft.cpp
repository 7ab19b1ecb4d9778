#include "fft.h"

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace gleam::fft {

using simd::CVec;
using simd::scalar_t;

std::vector<int> factorize(int n) {
  if (n < 1) throw std::invalid_argument("fft size must be >= 1");
  std::vector<int> f;
  while (n % 4 == 0) { f.push_back(4); n /= 4; }
  if (n % 2 == 0) { f.push_back(2); n /= 2; }
  for (int p = 3; n > 1; p += 2) {
    if (p * p > n) { f.push_back(n); break; }
    while (n % p == 0) { f.push_back(p); n /= p; }
  }
  return f;
}

template <typename T> Plan<T>::Plan(int n) : n_(n) {
  const long double two_pi = 6.283185307179586476925286766559L;
  int s = 1, len = n;
  for (int r : factorize(n)) {
    Stage<T> st;
    st.radix = r;
    st.m = len / r;
    st.s = s;
    st.tw_re.resize(size_t(st.m) * (r - 1));
    st.tw_im.resize(size_t(st.m) * (r - 1));
    for (int p = 0; p < st.m; ++p)
      for (int k = 1; k < r; ++k) {
        // Reduce the angle index exactly in integers before the trig call.
        long long e = (static_cast<long long>(p) * k) % len;
        long double a = -two_pi * static_cast<long double>(e) / len;
        st.tw_re[size_t(p) * (r - 1) + k - 1] = static_cast<T>(std::cos(a));
        st.tw_im[size_t(p) * (r - 1) + k - 1] = static_cast<T>(std::sin(a));
      }
    if (r != 2 && r != 4 && r != 3) {
      const int h = (r - 1) / 2;
      st.cos_tab.resize(size_t(h) * h);
      st.sin_tab.resize(size_t(h) * h);
      for (int k = 1; k <= h; ++k)
        for (int j = 1; j <= h; ++j) {
          long double a = two_pi * static_cast<long double>((static_cast<long long>(j) * k) % r) / r;
          st.cos_tab[size_t(k - 1) * h + j - 1] = static_cast<T>(std::cos(a));
          st.sin_tab[size_t(k - 1) * h + j - 1] = static_cast<T>(std::sin(a));
        }
      if (r > max_generic_radix_) max_generic_radix_ = r;
    }
    stages_.push_back(std::move(st));
    s *= r;
    len /= r;
  }
}

template class Plan<float>;
template class Plan<double>;

namespace {

template <bool Inv, typename V> inline CVec<V> rot90(CVec<V> a) {
  // Multiplication by -i (forward) or +i (inverse): the 4th root of unity in use.
  return Inv ? simd::mul_pos_i(a) : simd::mul_neg_i(a);
}

template <bool Inv, typename V>
inline CVec<V> twiddle(CVec<V> a, const Stage<scalar_t<V>>& st, size_t idx) {
  return Inv ? simd::mul_conj_scalar(a, st.tw_re[idx], st.tw_im[idx])
             : simd::mul_scalar(a, st.tw_re[idx], st.tw_im[idx]);
}

template <bool Inv, typename V>
void stage2(const Stage<scalar_t<V>>& st, const CVec<V>* x, CVec<V>* y) {
  const int m = st.m, s = st.s;
  for (int p = 0; p < m; ++p) {
    const CVec<V>* x0 = x + size_t(s) * p;
    const CVec<V>* x1 = x + size_t(s) * (p + m);
    CVec<V>* y0 = y + size_t(s) * (2 * p);
    CVec<V>* y1 = y0 + s;
    if (p == 0) {
      for (int q = 0; q < s; ++q) {
        CVec<V> a = x0[q], b = x1[q];
        y0[q] = a + b;
        y1[q] = a - b;
      }
    } else {
      const size_t t = size_t(p);
      for (int q = 0; q < s; ++q) {
        CVec<V> a = x0[q], b = x1[q];
        y0[q] = a + b;
        y1[q] = twiddle<Inv>(a - b, st, t);
      }
    }
  }
}

template <bool Inv, typename V>
void stage4(const Stage<scalar_t<V>>& st, const CVec<V>* x, CVec<V>* y) {
  const int m = st.m, s = st.s;
  for (int p = 0; p < m; ++p) {
    const CVec<V>* x0 = x + size_t(s) * p;
    const CVec<V>* x1 = x + size_t(s) * (p + m);
    const CVec<V>* x2 = x + size_t(s) * (p + 2 * m);
    const CVec<V>* x3 = x + size_t(s) * (p + 3 * m);
    CVec<V>* y0 = y + size_t(s) * (4 * p);
    const size_t t = size_t(p) * 3;
    for (int q = 0; q < s; ++q) {
      CVec<V> a0 = x0[q], a1 = x1[q], a2 = x2[q], a3 = x3[q];
      CVec<V> s02 = a0 + a2, d02 = a0 - a2, s13 = a1 + a3, d13 = rot90<Inv>(a1 - a3);
      CVec<V> b0 = s02 + s13, b1 = d02 + d13, b2 = s02 - s13, b3 = d02 - d13;
      y0[q] = b0;
      if (p == 0) {
        y0[q + s] = b1;
        y0[q + 2 * s] = b2;
        y0[q + 3 * s] = b3;
      } else {
        y0[q + s] = twiddle<Inv>(b1, st, t);
        y0[q + 2 * s] = twiddle<Inv>(b2, st, t + 1);
        y0[q + 3 * s] = twiddle<Inv>(b3, st, t + 2);
      }
    }
  }
}

template <bool Inv, typename V>
void stage3(const Stage<scalar_t<V>>& st, const CVec<V>* x, CVec<V>* y) {
  using T = scalar_t<V>;
  const int m = st.m, s = st.s;
  const T half_sqrt3 = static_cast<T>(0.86602540378443864676372317075294L);
  for (int p = 0; p < m; ++p) {
    const CVec<V>* x0 = x + size_t(s) * p;
    const CVec<V>* x1 = x + size_t(s) * (p + m);
    const CVec<V>* x2 = x + size_t(s) * (p + 2 * m);
    CVec<V>* y0 = y + size_t(s) * (3 * p);
    const size_t t = size_t(p) * 2;
    for (int q = 0; q < s; ++q) {
      CVec<V> a0 = x0[q], a1 = x1[q], a2 = x2[q];
      CVec<V> t1 = a1 + a2;
      CVec<V> t2 = a0 - simd::scale(t1, simd::splat<V>(T(0.5)));
      CVec<V> t3 = rot90<Inv>(simd::scale(a1 - a2, simd::splat<V>(half_sqrt3)));
      CVec<V> b0 = a0 + t1, b1 = t2 + t3, b2 = t2 - t3;
      y0[q] = b0;
      if (p == 0) {
        y0[q + s] = b1;
        y0[q + 2 * s] = b2;
      } else {
        y0[q + s] = twiddle<Inv>(b1, st, t);
        y0[q + 2 * s] = twiddle<Inv>(b2, st, t + 1);
      }
    }
  }
}

// Odd radix r via the symmetric form: for k in [1, h], h = (r-1)/2,
//   C_k = a0 + sum_j (a_j + a_{r-j}) cos(2 pi jk / r),  D_k = sum_j (a_j - a_{r-j}) sin(2 pi jk / r)
//   forward: b_k = C_k - i D_k, b_{r-k} = C_k + i D_k   (inverse: signs of the i D_k terms swap).
// R > 0 fixes the radix at compile time (registers); R == 0 reads it from the stage.
template <bool Inv, int R, typename V>
void stage_odd(const Stage<scalar_t<V>>& st, const CVec<V>* x, CVec<V>* y, CVec<V>* tmp) {
  using T = scalar_t<V>;
  const int r = R > 0 ? R : st.radix;
  const int h = (r - 1) / 2;
  const int m = st.m, s = st.s;
  const T* cs = st.cos_tab.data();
  const T* sn = st.sin_tab.data();
  CVec<V> sum_local[R > 0 ? (R - 1) / 2 : 1], dif_local[R > 0 ? (R - 1) / 2 : 1];
  CVec<V>* sj = R > 0 ? sum_local : tmp;
  CVec<V>* dj = R > 0 ? dif_local : tmp + h;
  for (int p = 0; p < m; ++p) {
    CVec<V>* yp = y + size_t(s) * (size_t(r) * p);
    const size_t t = size_t(p) * (r - 1);
    for (int q = 0; q < s; ++q) {
      const CVec<V>* xq = x + size_t(s) * p + q;
      const CVec<V> a0 = xq[0];
      CVec<V> b0 = a0;
      for (int j = 1; j <= h; ++j) {
        CVec<V> aj = xq[size_t(s) * m * j], ar = xq[size_t(s) * m * (r - j)];
        sj[j - 1] = aj + ar;
        dj[j - 1] = aj - ar;
        b0 = b0 + sj[j - 1];
      }
      yp[q] = b0;
      for (int k = 1; k <= h; ++k) {
        CVec<V> c = a0, d = simd::zero<V>();
        const T* ck = cs + size_t(k - 1) * h;
        const T* sk = sn + size_t(k - 1) * h;
        for (int j = 0; j < h; ++j) {
          c.re += sj[j].re * ck[j];
          c.im += sj[j].im * ck[j];
          d.re += dj[j].re * sk[j];
          d.im += dj[j].im * sk[j];
        }
        CVec<V> id = simd::mul_neg_i(d);  // -i * D_k
        CVec<V> bk = Inv ? c - id : c + id;
        CVec<V> brk = Inv ? c + id : c - id;
        if (p == 0) {
          yp[q + size_t(s) * k] = bk;
          yp[q + size_t(s) * (r - k)] = brk;
        } else {
          yp[q + size_t(s) * k] = twiddle<Inv>(bk, st, t + k - 1);
          yp[q + size_t(s) * (r - k)] = twiddle<Inv>(brk, st, t + r - k - 1);
        }
      }
    }
  }
}

template <bool Inv, typename V>
void run(const Plan<scalar_t<V>>& plan, CVec<V>* data, CVec<V>* work) {
  const int n = plan.size();
  CVec<V>* src = data;
  CVec<V>* dst = work;
  CVec<V>* tmp = work + n;
  for (const auto& st : plan.stages()) {
    switch (st.radix) {
      case 2: stage2<Inv>(st, src, dst); break;
      case 3: stage3<Inv>(st, src, dst); break;
      case 4: stage4<Inv>(st, src, dst); break;
      case 5: stage_odd<Inv, 5>(st, src, dst, tmp); break;
      case 7: stage_odd<Inv, 7>(st, src, dst, tmp); break;
      default: stage_odd<Inv, 0>(st, src, dst, tmp); break;
    }
    std::swap(src, dst);
  }
  if (src != data) std::memcpy(static_cast<void*>(data), src, sizeof(CVec<V>) * size_t(n));
}

}  // namespace

template <typename V>
void transform(const Plan<scalar_t<V>>& plan, bool inverse, CVec<V>* data, CVec<V>* work) {
  if (inverse)
    run<true>(plan, data, work);
  else
    run<false>(plan, data, work);
}

#define GLEAM_INSTANTIATE_FFT(V) \
  template void transform<simd::V>(const Plan<scalar_t<simd::V>>&, bool, CVec<simd::V>*, CVec<simd::V>*);
GLEAM_INSTANTIATE_FFT(f32x8)
GLEAM_INSTANTIATE_FFT(f32x4)
GLEAM_INSTANTIATE_FFT(f64x4)
GLEAM_INSTANTIATE_FFT(f64x2)
#undef GLEAM_INSTANTIATE_FFT

}  // namespace gleam::fft
