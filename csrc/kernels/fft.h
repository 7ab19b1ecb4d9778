// Mixed-radix Stockham FFT over lane-parallel complex vectors.
//
// One `Plan<T>` describes a length-n transform (any n >= 1). `transform` runs it on
// `n` contiguous `CVec<V>` values, i.e. on `lanes<V>` independent sequences at once,
// one per vector lane. Radices 4, 2, 3 and 5 have dedicated butterflies; any other
// prime factor p uses a symmetric O(p^2 / 2) butterfly, so every size is exact
// (large prime sizes are slow, never wrong).
//
// Conventions match numpy/torch: forward uses exp(-2*pi*i*j*k/n), inverse the
// conjugate, and neither scales; callers fold 1/sqrt(n) into their own passes.
#pragma once

#include <cstdint>
#include <vector>

#include "simd.h"

namespace gleam::fft {

template <typename T> struct Stage {
  int radix = 1;  // r
  int m = 1;      // length of each sub-transform after this stage, n_s / r
  int s = 1;      // number of interleaved sequences (the stride), prod of earlier radices
  // Twiddles w_{n_s}^{p*k} for p in [0, m), k in [1, r): forward sign, row-major (p, k-1).
  std::vector<T> tw_re, tw_im;
  // Odd generic radix only: cos/sin(2*pi*j*k/r) for j, k in [1, (r-1)/2], row-major (k-1, j-1).
  std::vector<T> cos_tab, sin_tab;
};

template <typename T> class Plan {
 public:
  explicit Plan(int n);
  int size() const { return n_; }
  const std::vector<Stage<T>>& stages() const { return stages_; }
  // Number of CVec elements of scratch `transform` needs (besides the data itself).
  int64_t work_size() const { return int64_t(n_) + 2 * int64_t(max_generic_radix_); }

 private:
  int n_;
  int max_generic_radix_ = 0;
  std::vector<Stage<T>> stages_;
};

// The factors used for n, in stage order (exposed for tests).
std::vector<int> factorize(int n);

// In-place transform of `data[0..n)`; `work` has `plan.work_size()` elements.
template <typename V>
void transform(const Plan<simd::scalar_t<V>>& plan, bool inverse, simd::CVec<V>* data,
               simd::CVec<V>* work);

}  // namespace gleam::fft
