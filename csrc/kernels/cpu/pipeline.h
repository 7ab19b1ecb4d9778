// Block pipeline shared by the fused CPU SENSE kernels.
//
// A call is split into independent *blocks*: one block per batch element and per
// index along the axes the call does not transform (e.g. per image row when the
// mask only varies along W). Inside a block, coils are processed in groups that fill
// the lanes of a vector (8 complex64 or 4 complex128 coils), in a split re/im buffer
// of one block: gather (maps * x, fftshift folded into the indexing) -> FFT passes ->
// mask -> inverse passes -> conjugate combine. The buffer of a 1D block stays in L1,
// so the coil images never travel through memory.
//
// Blocks run in parallel when there are many; a few big blocks (a 2D forward op,
// batch 1) run one after the other with each pass parallel inside.
#pragma once

#include <algorithm>
#include <complex>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <vector>

#include "kernels/fft.h"
#include "kernels/geometry.h"
#include "kernels/simd.h"

namespace gleam::cpu {

// body(begin, end) over a partition of [begin, end); grain is the smallest chunk worth a task.
using ParallelFor =
    std::function<void(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& body)>;

struct Executor {
  ParallelFor pfor;
  int threads = 1;
};

// Runs everything on the calling thread.
Executor serial_executor();

namespace detail {

template <typename T> struct VecTypes;
template <> struct VecTypes<float> { using full = simd::f32x8; using half = simd::f32x4; };
template <> struct VecTypes<double> { using full = simd::f64x4; using half = simd::f64x2; };

class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t bytes) {
    bytes_ = (std::max<size_t>(bytes, 64) + 63) / 64 * 64;
    p_ = std::aligned_alloc(64, bytes_);
    if (!p_) throw std::bad_alloc();
  }
  ~AlignedBuffer() { std::free(p_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  template <typename U> U* as() const { return static_cast<U*>(p_); }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Per-thread, grow-only scratch for FFT lines: allocated once per thread instead of once
// per block and pass (the kernels call this thousands of times per op).
template <typename U> U* thread_scratch(size_t count) {
  thread_local std::unique_ptr<AlignedBuffer> buf;
  thread_local size_t capacity = 0;
  const size_t bytes = sizeof(U) * count;
  if (bytes > capacity) {
    buf = std::make_unique<AlignedBuffer>(bytes);
    capacity = bytes;
  }
  return buf->as<U>();
}

template <typename T> class Layout {
 public:
  using C = std::complex<T>;

  // `square_mask`: the normal operator applies mask^2 (the mask may hold weights).
  Layout(const SenseGeometry& geom, T scale_in, T scale_out) : g(geom), scale_in(scale_in), scale_out(scale_out) {
    st[2] = 1;
    st[1] = g.n[2];
    st[0] = g.n[1] * g.n[2];
    kst[2] = 1;
    kst[1] = g.mask_n[2];
    kst[0] = g.mask_n[1] * g.mask_n[2];
    S = g.spatial();
    Sm = g.maps_spatial();
    K = g.mask_spatial();
    P = 1;
    outer = g.batch;
    for (int a = 0; a < 3; ++a) {
      bn[a] = g.fft[a] ? g.n[a] : 1;
      P *= bn[a];
      if (!g.fft[a]) outer *= g.n[a];
      img_off[a].resize(bn[a]);
      msk_off[a].resize(bn[a]);
      // Buffer index j holds array index (j + n/2) % n: ifftshift on the way in,
      // fftshift on the way out, exact for odd and even sizes.
      for (int64_t j = 0; j < bn[a]; ++j) {
        int64_t i = g.fft[a] ? (j + g.n[a] / 2) % g.n[a] : 0;
        img_off[a][j] = i * st[a];
        msk_off[a][j] = g.mask_n[a] > 1 ? i * kst[a] : 0;
      }
      if (g.fft[a]) plan[a] = std::make_unique<fft::Plan<T>>(static_cast<int>(g.n[a]));
    }
    rows = bn[0] * bn[1];
    if (g.fft[2]) {
      const int64_t h = g.n[2] / 2;
      runs.push_back({0, h, g.n[2] - h});
      if (h > 0) runs.push_back({g.n[2] - h, 0, h});
    } else {
      runs.push_back({0, 0, 1});
    }
    // Forward transform order: axes along which the mask is constant go last, so that
    // lines the mask zeroes can be skipped (forward: last pass; adjoint: first pass).
    for (int a = 2; a >= 0; --a)
      if (g.fft[a] && g.mask_n[a] > 1) order.push_back(a);
    for (int a = 2; a >= 0; --a)
      if (g.fft[a] && g.mask_n[a] == 1) order.push_back(a);
    for (int a = 0; a < 3; ++a) {
      if (g.fft[a]) max_line = std::max(max_line, g.n[a]);
      if (plan[a]) max_work = std::max(max_work, plan[a]->work_size());
    }
  }

  struct Bases {
    int64_t b;     // batch index
    int64_t sp;    // spatial offset of the block in image / k-space arrays
    int64_t spm;   // spatial offset in the maps array
    int64_t mask;  // offset in the mask array
  };

  Bases bases(int64_t o) const {
    int64_t idx[3] = {0, 0, 0};
    // Cine maps broadcast over frames: make the frame index the fastest-varying one, so
    // consecutive blocks reuse the same rows of maps from cache.
    const bool frames_inner = g.maps_bcast0 && !g.fft[0];
    if (frames_inner) {
      idx[0] = o % g.n[0];
      o /= g.n[0];
    }
    for (int a = 2; a >= (frames_inner ? 1 : 0); --a)
      if (!g.fft[a]) {
        idx[a] = o % g.n[a];
        o /= g.n[a];
      }
    Bases r{o, 0, 0, 0};
    for (int a = 0; a < 3; ++a) {
      if (g.fft[a]) continue;
      r.sp += idx[a] * st[a];
      r.spm += (a == 0 && g.maps_bcast0) ? 0 : idx[a] * st[a];
      r.mask += g.mask_n[a] > 1 ? idx[a] * kst[a] : 0;
    }
    r.mask += (g.mask_batch ? r.b : 0) * K;
    return r;
  }

  int64_t image_base(const Bases& r, int64_t m) const { return (r.b * g.sets + m) * S + r.sp; }
  int64_t kspace_base(const Bases& r, int64_t c) const { return (r.b * g.coils + c) * S + r.sp; }
  int64_t maps_base(const Bases& r, int64_t c, int64_t m) const {
    int64_t bm = g.maps_batch_bcast ? 0 : r.b;
    return ((bm * g.coils + c) * g.sets + m) * Sm + r.spm;
  }
  int64_t row_offset(int64_t row) const { return img_off[0][row / bn[1]] + img_off[1][row % bn[1]]; }
  int64_t row_mask_offset(int64_t row) const { return msk_off[0][row / bn[1]] + msk_off[1][row % bn[1]]; }

  // Stride of axis a inside the block buffer.
  int64_t block_stride(int a) const {
    int64_t s = 1;
    for (int k = a + 1; k < 3; ++k) s *= bn[k];
    return s;
  }

  const SenseGeometry& g;
  T scale_in, scale_out;
  int64_t st[3], kst[3];
  int64_t S, Sm, K, P, outer, rows;
  int64_t bn[3];
  std::vector<int64_t> img_off[3], msk_off[3];
  std::unique_ptr<fft::Plan<T>> plan[3];
  std::vector<int> order;
  // Contiguous pieces of a block row in the arrays: buffer index j..j+len <-> offset o..o+len.
  struct Run {
    int64_t j, o, len;
  };
  std::vector<Run> runs;
  int64_t max_line = 1, max_work = 1;
};

// ---- passes on one block; each takes a row or line range so it can be split across threads ----

template <typename T>
void fill_mask(const Layout<T>& L, const typename Layout<T>::Bases& r, const T* mask, bool square, T* mblk,
               int64_t r0, int64_t r1) {
  const int64_t n2 = L.bn[2];
  for (int64_t row = r0; row < r1; ++row) {
    const T* mrow = mask + r.mask + L.row_mask_offset(row);
    T* out = mblk + row * n2;
    for (int64_t j = 0; j < n2; ++j) {
      T v = mrow[L.msk_off[2][j]];
      out[j] = square ? v * v : v;
    }
  }
}

// ---- gather / scatter between coil arrays and the split-complex block buffer ----
//
// Along the contiguous axis a buffer row maps onto at most two contiguous runs of the
// array (the fftshift rotation wraps once). Each run is processed in chunks of
// lanes/2 positions: one vector load per coil, an in-register transpose to split
// form, then pure lane-parallel arithmetic; the last few positions go scalar.

template <typename T, typename V> inline T* lanes_re(simd::CVec<V>& c) { return reinterpret_cast<T*>(&c.re); }
template <typename T, typename V> inline T* lanes_im(simd::CVec<V>& c) { return reinterpret_cast<T*>(&c.im); }

// Per-lane row pointers of one coil group (nullptr for unused lanes).
template <typename T, int NL> struct LaneRows {
  const std::complex<T>* p[NL];
  template <typename F> LaneRows(int la, F&& row_of_lane) {
    for (int l = 0; l < NL; ++l) p[l] = l < la ? row_of_lane(l) : nullptr;
  }
  template <typename V> void load(int64_t off, V (&rows)[NL]) const {
    for (int l = 0; l < NL; ++l)
      rows[l] = p[l] ? simd::load<V>(reinterpret_cast<const T*>(p[l] + off)) : V{};
  }
};

// buf[pos].lane(l) = scale_in * sum_m maps[c0+l, m] * x[m]   for l < la, zero for l >= la.
template <typename T, typename V>
void gather_image(const Layout<T>& L, const typename Layout<T>::Bases& r, int64_t c0, int la,
                  const std::complex<T>* x, const std::complex<T>* maps, simd::CVec<V>* buf, int64_t r0, int64_t r1) {
  constexpr int NL = simd::lanes_v<V>, K = NL / 2;
  const T sc = L.scale_in;
  for (int64_t row = r0; row < r1; ++row) {
    simd::CVec<V>* b = buf + row * L.bn[2];
    const int64_t ro = L.row_offset(row);
    for (int64_t m = 0; m < L.g.sets; ++m) {
      const bool first = m == 0;
      const std::complex<T>* xr = x + L.image_base(r, m) + ro;
      const LaneRows<T, NL> mp(la, [&](int l) { return maps + L.maps_base(r, c0 + l, m) + ro; });
      for (const auto& run : L.runs) {
        int64_t k0 = 0;
        for (; k0 + K <= run.len; k0 += K) {
          V rows[NL];
          mp.load(run.o + k0, rows);
          simd::transpose(rows);
          const T* xp = reinterpret_cast<const T*>(xr + run.o + k0);
          for (int k = 0; k < K; ++k) {
            const V xre = simd::splat<V>(xp[2 * k] * sc), xim = simd::splat<V>(xp[2 * k + 1] * sc);
            const simd::CVec<V> v{rows[2 * k] * xre - rows[2 * k + 1] * xim, rows[2 * k] * xim + rows[2 * k + 1] * xre};
            simd::CVec<V>& dst = b[run.j + k0 + k];
            dst = first ? v : dst + v;
          }
        }
        for (; k0 < run.len; ++k0) {
          simd::CVec<V>& dst = b[run.j + k0];
          if (first) dst = simd::zero<V>();
          T* br = lanes_re<T>(dst);
          T* bi = lanes_im<T>(dst);
          const std::complex<T> xv = xr[run.o + k0] * sc;
          for (int l = 0; l < la; ++l) {
            const std::complex<T> v = mp.p[l][run.o + k0] * xv;
            br[l] += v.real();
            bi[l] += v.imag();
          }
        }
      }
    }
  }
}

// out[m, pos] += scale * sum_l conj(maps[c0+l, m, pos]) * buf[pos].lane(l).
template <typename T, typename V>
void combine_image(const Layout<T>& L, const typename Layout<T>::Bases& r, int64_t c0, int la,
                   const std::complex<T>* maps, simd::CVec<V>* buf, T scale, std::complex<T>* out, int64_t r0,
                   int64_t r1) {
  constexpr int NL = simd::lanes_v<V>, K = NL / 2;
  const V vs = simd::splat<V>(scale);
  for (int64_t row = r0; row < r1; ++row) {
    simd::CVec<V>* b = buf + row * L.bn[2];
    const int64_t ro = L.row_offset(row);
    for (int64_t m = 0; m < L.g.sets; ++m) {
      std::complex<T>* orow = out + L.image_base(r, m) + ro;
      const LaneRows<T, NL> mp(la, [&](int l) { return maps + L.maps_base(r, c0 + l, m) + ro; });
      for (const auto& run : L.runs) {
        int64_t k0 = 0;
        for (; k0 + K <= run.len; k0 += K) {
          V rows[NL], prod[NL];
          mp.load(run.o + k0, rows);
          simd::transpose(rows);
          for (int k = 0; k < K; ++k) {
            const simd::CVec<V> bv = b[run.j + k0 + k];
            prod[2 * k] = (rows[2 * k] * bv.re + rows[2 * k + 1] * bv.im) * vs;
            prod[2 * k + 1] = (rows[2 * k] * bv.im - rows[2 * k + 1] * bv.re) * vs;
          }
          simd::transpose(prod);  // prod[l]: lane l's K products, interleaved complex
          V sum = prod[0];
          for (int l = 1; l < NL; ++l) sum += prod[l];
          T* op = reinterpret_cast<T*>(orow + run.o + k0);
          simd::store<V>(op, simd::load<V>(op) + sum);
        }
        for (; k0 < run.len; ++k0) {
          simd::CVec<V>& src = b[run.j + k0];
          const T* br = lanes_re<T>(src);
          const T* bi = lanes_im<T>(src);
          std::complex<T> acc(0);
          for (int l = 0; l < la; ++l) acc += std::conj(mp.p[l][run.o + k0]) * std::complex<T>(br[l], bi[l]);
          orow[run.o + k0] += acc * scale;
        }
      }
    }
  }
}

// buf[pos].lane(l) = scale_in * mask[pos] * y[c0+l, pos].
template <typename T, typename V>
void gather_kspace(const Layout<T>& L, const typename Layout<T>::Bases& r, int64_t c0, int la,
                   const std::complex<T>* y, const T* mblk, simd::CVec<V>* buf, int64_t r0, int64_t r1) {
  constexpr int NL = simd::lanes_v<V>, K = NL / 2;
  const T sc = L.scale_in;
  for (int64_t row = r0; row < r1; ++row) {
    simd::CVec<V>* b = buf + row * L.bn[2];
    const T* mk = mblk + row * L.bn[2];
    const int64_t ro = L.row_offset(row);
    const LaneRows<T, NL> yp(la, [&](int l) { return y + L.kspace_base(r, c0 + l) + ro; });
    for (const auto& run : L.runs) {
      int64_t k0 = 0;
      for (; k0 + K <= run.len; k0 += K) {
        V rows[NL];
        yp.load(run.o + k0, rows);
        simd::transpose(rows);
        for (int k = 0; k < K; ++k) {
          const V w = simd::splat<V>(mk[run.j + k0 + k] * sc);
          b[run.j + k0 + k] = {rows[2 * k] * w, rows[2 * k + 1] * w};
        }
      }
      for (; k0 < run.len; ++k0) {
        simd::CVec<V>& dst = b[run.j + k0];
        dst = simd::zero<V>();
        const T w = mk[run.j + k0] * sc;
        for (int l = 0; l < la; ++l) {
          lanes_re<T>(dst)[l] = yp.p[l][run.o + k0].real() * w;
          lanes_im<T>(dst)[l] = yp.p[l][run.o + k0].imag() * w;
        }
      }
    }
  }
}

// y[c0+l, pos] = scale_out * mask[pos] * buf[pos].lane(l).
template <typename T, typename V>
void scatter_kspace(const Layout<T>& L, const typename Layout<T>::Bases& r, int64_t c0, int la,
                    simd::CVec<V>* buf, const T* mblk, std::complex<T>* y, int64_t r0, int64_t r1) {
  constexpr int NL = simd::lanes_v<V>, K = NL / 2;
  const T sc = L.scale_out;
  for (int64_t row = r0; row < r1; ++row) {
    simd::CVec<V>* b = buf + row * L.bn[2];
    const T* mk = mblk + row * L.bn[2];
    const int64_t ro = L.row_offset(row);
    std::complex<T>* yp[NL];
    for (int l = 0; l < la; ++l) yp[l] = y + L.kspace_base(r, c0 + l) + ro;
    for (const auto& run : L.runs) {
      int64_t k0 = 0;
      for (; k0 + K <= run.len; k0 += K) {
        V rows[NL];
        for (int k = 0; k < K; ++k) {
          const V w = simd::splat<V>(mk[run.j + k0 + k] * sc);
          rows[2 * k] = b[run.j + k0 + k].re * w;
          rows[2 * k + 1] = b[run.j + k0 + k].im * w;
        }
        simd::transpose(rows);
        for (int l = 0; l < la; ++l) simd::store<V>(reinterpret_cast<T*>(yp[l] + run.o + k0), rows[l]);
      }
      for (; k0 < run.len; ++k0) {
        simd::CVec<V>& src = b[run.j + k0];
        const T w = mk[run.j + k0] * sc;
        for (int l = 0; l < la; ++l)
          yp[l][run.o + k0] = std::complex<T>(lanes_re<T>(src)[l] * w, lanes_im<T>(src)[l] * w);
      }
    }
  }
}

// out[b, c0+l, m, pos] (=, or += with accumulate) scale * conj(u[m, pos]) * buf[pos].lane(l):
// the maps gradients' outer product of a coil buffer with an image. `out` has the
// unbroadcast maps layout (B, C, M, *S) of the image's geometry.
template <typename T, typename V>
void outer_maps(const Layout<T>& L, const typename Layout<T>::Bases& r, int64_t c0, int la,
                const std::complex<T>* u, simd::CVec<V>* buf, T scale, bool accumulate, std::complex<T>* out,
                int64_t r0, int64_t r1) {
  const auto& g = L.g;
  for (int64_t row = r0; row < r1; ++row) {
    simd::CVec<V>* b = buf + row * L.bn[2];
    const int64_t ro = L.row_offset(row);
    for (int64_t m = 0; m < g.sets; ++m) {
      const std::complex<T>* urow = u + L.image_base(r, m) + ro;
      for (int l = 0; l < la; ++l) {
        std::complex<T>* orow = out + ((r.b * g.coils + c0 + l) * g.sets + m) * L.S + r.sp + ro;
        for (const auto& run : L.runs)
          for (int64_t k = 0; k < run.len; ++k) {
            simd::CVec<V>& src = b[run.j + k];
            const std::complex<T> v =
                std::conj(urow[run.o + k]) * std::complex<T>(lanes_re<T>(src)[l], lanes_im<T>(src)[l]) * scale;
            orow[run.o + k] = accumulate ? orow[run.o + k] + v : v;
          }
      }
    }
  }
}

enum class LineOp { kForward, kInverse, kForwardMaskInverse };

// Transforms lines [l0, l1) of the block buffer along axis a. Lines whose mask is all
// zero are zeroed without a transform (their input or output is masked away anyway);
// in the fused normal pass, lines whose mask is all one skip both transforms.
template <typename T, typename V>
void transform_lines(const Layout<T>& L, int a, LineOp op, bool prune, const T* mblk, simd::CVec<V>* buf,
                     int64_t l0, int64_t l1) {
  const int64_t n = L.bn[a];
  const int64_t sa = L.block_stride(a);
  const fft::Plan<T>& plan = *L.plan[a];
  simd::CVec<V>* line = thread_scratch<simd::CVec<V>>(size_t(n + L.max_work));
  simd::CVec<V>* work = line + n;
  for (int64_t li = l0; li < l1; ++li) {
    const int64_t base = (li / sa) * n * sa + (li % sa);
    bool all_zero = false, all_one = false;
    if (prune || op == LineOp::kForwardMaskInverse) {
      all_zero = all_one = true;
      for (int64_t j = 0; j < n; ++j) {
        const T m = mblk[base + j * sa];
        all_zero = all_zero && m == T(0);
        all_one = all_one && m == T(1);
      }
    }
    if (all_zero && (prune || op == LineOp::kForwardMaskInverse)) {
      for (int64_t j = 0; j < n; ++j) buf[base + j * sa] = simd::zero<V>();
      continue;
    }
    if (op == LineOp::kForwardMaskInverse && all_one) {
      // The unnormalized pair F^H F is n * I; the block's 1/N scale expects it.
      const auto nv = simd::splat<V>(static_cast<T>(n));
      for (int64_t j = 0; j < n; ++j) buf[base + j * sa] = simd::scale(buf[base + j * sa], nv);
      continue;
    }
    simd::CVec<V>* d = sa == 1 ? buf + base : line;
    if (sa != 1)
      for (int64_t j = 0; j < n; ++j) line[j] = buf[base + j * sa];
    if (op == LineOp::kInverse) {
      fft::transform<V>(plan, true, d, work);
    } else {
      fft::transform<V>(plan, false, d, work);
      if (op == LineOp::kForwardMaskInverse) {
        for (int64_t j = 0; j < n; ++j) d[j] = simd::scale(d[j], simd::splat<V>(mblk[base + j * sa]));
        fft::transform<V>(plan, true, d, work);
      }
    }
    if (sa != 1)
      for (int64_t j = 0; j < n; ++j) buf[base + j * sa] = line[j];
  }
}

// out[m, pos] = x[m, pos] + s * ahy[m, pos] (the DC step's first term), or 0 without x.
template <typename T>
void init_image(const Layout<T>& L, const typename Layout<T>::Bases& r, const std::complex<T>* x,
                const std::complex<T>* ahy, T s, std::complex<T>* out, int64_t r0, int64_t r1) {
  const int64_t n2 = L.bn[2];
  const int64_t* off2 = L.img_off[2].data();
  for (int64_t row = r0; row < r1; ++row) {
    const int64_t ro = L.row_offset(row);
    for (int64_t m = 0; m < L.g.sets; ++m) {
      const int64_t base = L.image_base(r, m) + ro;
      for (int64_t j = 0; j < n2; ++j) {
        const int64_t o = base + off2[j];
        out[o] = x ? x[o] + s * ahy[o] : std::complex<T>(0);
      }
    }
  }
}

template <typename T, typename V>
void apply_mask(const Layout<T>& L, const T* mblk, simd::CVec<V>* buf, int64_t r0, int64_t r1) {
  const int64_t n2 = L.bn[2];
  for (int64_t p = r0 * n2; p < r1 * n2; ++p) buf[p] = simd::scale(buf[p], simd::splat<V>(mblk[p]));
}

// Runs `step(begin, end)` over [0, count) with the block-inner executor.
struct Inner {
  const Executor* exec;  // nullptr: serial
  void operator()(int64_t count, int64_t grain, const std::function<void(int64_t, int64_t)>& step) const {
    if (!exec || exec->threads <= 1 || count < 2 * grain)
      step(0, count);
    else
      exec->pfor(0, count, grain, step);
  }
};

template <typename T, typename V> struct Passes {
  using Bases = typename Layout<T>::Bases;

  // Forward transform of all block axes (with pruning of mask-zeroed lines on the last).
  static void forward(const Layout<T>& L, const Inner& in, const T* mblk, simd::CVec<V>* buf, bool prune_last) {
    for (size_t i = 0; i < L.order.size(); ++i) {
      const int a = L.order[i];
      const bool prune = prune_last && i + 1 == L.order.size();
      in(L.P / L.bn[a], 8, [&](int64_t l0, int64_t l1) {
        transform_lines<T, V>(L, a, LineOp::kForward, prune, mblk, buf, l0, l1);
      });
    }
  }

  static void inverse(const Layout<T>& L, const Inner& in, const T* mblk, simd::CVec<V>* buf, bool prune_first) {
    for (size_t i = L.order.size(); i-- > 0;) {
      const int a = L.order[i];
      const bool prune = prune_first && i + 1 == L.order.size();
      in(L.P / L.bn[a], 8, [&](int64_t l0, int64_t l1) {
        transform_lines<T, V>(L, a, LineOp::kInverse, prune, mblk, buf, l0, l1);
      });
    }
  }

  // F^H diag(mask) F on the block: the last forward axis and the first inverse axis fuse.
  static void normal(const Layout<T>& L, const Inner& in, const T* mblk, simd::CVec<V>* buf) {
    const size_t k = L.order.size();
    if (k == 0) {
      in(L.rows, 16, [&](int64_t r0, int64_t r1) { apply_mask<T, V>(L, mblk, buf, r0, r1); });
      return;
    }
    for (size_t i = 0; i + 1 < k; ++i) {
      const int a = L.order[i];
      in(L.P / L.bn[a], 8, [&](int64_t l0, int64_t l1) {
        transform_lines<T, V>(L, a, LineOp::kForward, false, mblk, buf, l0, l1);
      });
    }
    const int last = L.order[k - 1];
    in(L.P / L.bn[last], 8, [&](int64_t l0, int64_t l1) {
      transform_lines<T, V>(L, last, LineOp::kForwardMaskInverse, false, mblk, buf, l0, l1);
    });
    for (size_t i = k - 1; i-- > 0;) {
      const int a = L.order[i];
      in(L.P / L.bn[a], 8, [&](int64_t l0, int64_t l1) {
        transform_lines<T, V>(L, a, LineOp::kInverse, false, mblk, buf, l0, l1);
      });
    }
  }
};

// Number of coils the next group takes and whether it needs the full vector width.
template <typename T> inline int group_lanes(int64_t remaining, bool& full) {
  constexpr int F = simd::lanes_v<typename VecTypes<T>::full>;
  constexpr int H = simd::lanes_v<typename VecTypes<T>::half>;
  full = remaining > H;
  return static_cast<int>(std::min<int64_t>(remaining, full ? F : H));
}

// Calls fn(vector_tag, first_coil, lanes_used) for each coil group.
template <typename T, typename Fn> void for_each_group(int64_t coils, Fn&& fn) {
  for (int64_t c0 = 0; c0 < coils;) {
    bool full;
    const int la = group_lanes<T>(coils - c0, full);
    if (full)
      fn(typename VecTypes<T>::full{}, c0, la);
    else
      fn(typename VecTypes<T>::half{}, c0, la);
    c0 += la;
  }
}

// Per-thread block workspace: the split-complex coil buffer and the block's mask.
template <typename T> struct Workspace {
  explicit Workspace(const Layout<T>& L)
      : buf(sizeof(simd::CVec<typename VecTypes<T>::full>) * size_t(L.P)), mask(sizeof(T) * size_t(L.P)) {}
  AlignedBuffer buf, mask;
};

// Calls body(o, workspace, inner) for every block o, choosing where the parallelism goes.
template <typename T, typename Body>
void for_each_block(const Layout<T>& L, const Executor& ex, Body&& body) {
  const bool many_blocks = L.outer >= 4 * int64_t(ex.threads) || L.P < 4096;
  if (many_blocks && ex.threads > 1) {
    ex.pfor(0, L.outer, 1, [&](int64_t o0, int64_t o1) {
      Workspace<T> ws(L);
      const Inner serial{nullptr};
      for (int64_t o = o0; o < o1; ++o) body(o, ws, serial);
    });
  } else {
    Workspace<T> ws(L);
    const Inner inner{&ex};
    for (int64_t o = 0; o < L.outer; ++o) body(o, ws, inner);
  }
}

}  // namespace detail
}  // namespace gleam::cpu
