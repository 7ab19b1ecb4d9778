// Device-side helpers shared by the SENSE CUDA kernels: interleaved complex arithmetic
// and the index arithmetic of a SenseGeometry (buffer <-> array coordinates with the
// fftshift folded in, broadcast strides of maps and mask).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/geometry.h"

namespace gleam::cuda::detail {

template <typename T> struct C2;
template <> struct C2<float> { using type = float2; };
template <> struct C2<double> { using type = double2; };
template <typename T> using c2 = typename C2<T>::type;

template <typename T> __device__ __forceinline__ c2<T> cmul(c2<T> a, c2<T> b) {
  return {a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x};
}
template <typename T> __device__ __forceinline__ c2<T> cmul_conj(c2<T> a, c2<T> b) {  // conj(a) * b
  return {a.x * b.x + a.y * b.y, a.x * b.y - a.y * b.x};
}

// Index arithmetic shared by all kernels, passed by value. I is uint32_t whenever every
// index fits (64-bit integer division is emulated on GPUs and would dominate these
// memory-bound kernels), int64_t otherwise.
template <typename I> struct Dims {
  I n[3];
  I h[3];       // n/2 on transformed axes, 0 elsewhere (no rotation)
  I S, Sm, K;   // spatial sizes of image, maps, mask
  I kst[3];     // mask strides (0 where the mask broadcasts)
  I mst0;       // maps stride of axis 0 (0 when maps broadcast over it)
  I C, M;
  bool maps_bcast_b, mask_batch;

  explicit Dims(const SenseGeometry& g) {
    for (int a = 0; a < 3; ++a) {
      n[a] = I(g.n[a]);
      h[a] = I(g.fft[a] ? g.n[a] / 2 : 0);
    }
    S = I(g.spatial());
    Sm = I(g.maps_spatial());
    K = I(g.mask_spatial());
    kst[2] = g.mask_n[2] > 1 ? 1 : 0;
    kst[1] = I(g.mask_n[1] > 1 ? g.mask_n[2] : 0);
    kst[0] = I(g.mask_n[0] > 1 ? g.mask_n[1] * g.mask_n[2] : 0);
    mst0 = I(g.maps_bcast0 ? 0 : g.n[1] * g.n[2]);
    C = I(g.coils);
    M = I(g.sets);
    maps_bcast_b = g.maps_batch_bcast;
    mask_batch = g.mask_batch;
  }

  __device__ __forceinline__ void split(I p, I (&i)[3]) const {
    i[2] = p % n[2];
    p /= n[2];
    i[1] = p % n[1];
    i[0] = p / n[1];
  }
  // Buffer coordinate j -> array coordinate (j + h) % n.
  __device__ __forceinline__ void to_array(I (&i)[3]) const {
    for (int a = 0; a < 3; ++a) {
      i[a] += h[a];
      if (i[a] >= n[a]) i[a] -= n[a];
    }
  }
  // Array coordinate i -> buffer coordinate (i - h) mod n.
  __device__ __forceinline__ void to_buffer(I (&i)[3]) const {
    for (int a = 0; a < 3; ++a) i[a] = i[a] >= h[a] ? i[a] - h[a] : i[a] + n[a] - h[a];
  }
  __device__ __forceinline__ I offset(const I (&i)[3]) const { return (i[0] * n[1] + i[1]) * n[2] + i[2]; }
  __device__ __forceinline__ I maps_offset(const I (&i)[3]) const { return i[0] * mst0 + i[1] * n[2] + i[2]; }
  __device__ __forceinline__ I mask_offset(I b, const I (&i)[3]) const {
    return (mask_batch ? b * K : 0) + i[0] * kst[0] + i[1] * kst[1] + i[2] * kst[2];
  }
  __device__ __forceinline__ I maps_base(I b, I c, I m) const {
    return (((maps_bcast_b ? 0 : b) * C + c) * M + m) * Sm;
  }
};

// True when every index a kernel forms fits in 32 bits.
inline bool fits32(const SenseGeometry& g) {
  const int64_t biggest = std::max({g.batch * g.coils * g.spatial(), g.batch * g.sets * g.spatial(),
                                    (g.maps_batch_bcast ? 1 : g.batch) * g.coils * g.sets * g.maps_spatial()});
  return biggest < (int64_t(1) << 31);
}

}  // namespace gleam::cuda::detail
