// Shape description shared by the framework-free SENSE kernels (CPU and CUDA).
//
// Layouts (all contiguous, complex interleaved, row-major):
//   image  x    (B, M, n0, n1, n2)          M map sets
//   maps        (Bm, C, M, m0, n1, n2)      Bm in {1, B}; m0 in {1, n0} (broadcast over cine frames)
//   k-space y   (B, C, n0, n1, n2)
//   mask        (Bk, k0, k1, k2) real       Bk in {1, B}; k_a in {1, n_a}
// 2D problems are padded to 3 spatial axes as (1, H, W). `fft[a]` marks the axes a
// call transforms: all FFT axes for forward/adjoint; for normal/DC ops only the axes
// along which the mask varies (readout decoupling drops the rest, exactly).
#pragma once

#include <cstdint>

namespace gleam {

struct SenseGeometry {
  int64_t batch = 1;
  int64_t coils = 1;
  int64_t sets = 1;
  int64_t n[3] = {1, 1, 1};
  bool fft[3] = {false, false, false};
  bool maps_batch_bcast = false;  // Bm == 1 < B
  bool maps_bcast0 = false;       // m0 == 1 < n0 (only allowed when axis 0 is not an FFT axis)
  bool mask_batch = false;        // Bk == B (else 1)
  int64_t mask_n[3] = {1, 1, 1};

  int64_t spatial() const { return n[0] * n[1] * n[2]; }
  int64_t maps_spatial() const { return (maps_bcast0 ? 1 : n[0]) * n[1] * n[2]; }
  int64_t mask_spatial() const { return mask_n[0] * mask_n[1] * mask_n[2]; }
  // Product of the transformed extents (the orthonormal scale is its inverse square root).
  int64_t fft_size() const {
    int64_t s = 1;
    for (int a = 0; a < 3; ++a)
      if (fft[a]) s *= n[a];
    return s;
  }
};

}  // namespace gleam
