#include "kernels/cuda/sense_cuda.cuh"

namespace gleam::cuda {

namespace {

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

// Index arithmetic shared by all kernels, passed by value.
struct Dims {
  int64_t n[3];
  int64_t h[3];       // n/2 on transformed axes, 0 elsewhere (no rotation)
  int64_t S;          // spatial size
  int64_t Sm;         // maps spatial size
  int64_t K;          // mask spatial size
  int64_t kst[3];     // mask strides (0 where the mask broadcasts)
  int64_t mst0;       // maps stride of axis 0 (0 when maps broadcast over it)
  int64_t B, C, M;
  bool maps_bcast_b, mask_batch;

  explicit Dims(const SenseGeometry& g) {
    for (int a = 0; a < 3; ++a) {
      n[a] = g.n[a];
      h[a] = g.fft[a] ? g.n[a] / 2 : 0;
    }
    S = g.spatial();
    Sm = g.maps_spatial();
    K = g.mask_spatial();
    kst[2] = g.mask_n[2] > 1 ? 1 : 0;
    kst[1] = g.mask_n[1] > 1 ? g.mask_n[2] : 0;
    kst[0] = g.mask_n[0] > 1 ? g.mask_n[1] * g.mask_n[2] : 0;
    mst0 = g.maps_bcast0 ? 0 : g.n[1] * g.n[2];
    B = g.batch;
    C = g.coils;
    M = g.sets;
    maps_bcast_b = g.maps_batch_bcast;
    mask_batch = g.mask_batch;
  }

  // Array index of buffer position j (both as spatial coordinates); returns array offset.
  __device__ __forceinline__ void split(int64_t p, int64_t (&i)[3]) const {
    i[2] = p % n[2];
    p /= n[2];
    i[1] = p % n[1];
    i[0] = p / n[1];
  }
  // Buffer coordinate j -> array coordinate (j + h) % n.
  __device__ __forceinline__ void to_array(int64_t (&i)[3]) const {
    for (int a = 0; a < 3; ++a) {
      i[a] += h[a];
      if (i[a] >= n[a]) i[a] -= n[a];
    }
  }
  // Array coordinate i -> buffer coordinate (i - h) mod n.
  __device__ __forceinline__ void to_buffer(int64_t (&i)[3]) const {
    for (int a = 0; a < 3; ++a) {
      i[a] -= h[a];
      if (i[a] < 0) i[a] += n[a];
    }
  }
  __device__ __forceinline__ int64_t offset(const int64_t (&i)[3]) const { return (i[0] * n[1] + i[1]) * n[2] + i[2]; }
  __device__ __forceinline__ int64_t maps_offset(const int64_t (&i)[3]) const {
    return i[0] * mst0 + i[1] * n[2] + i[2];
  }
  __device__ __forceinline__ int64_t mask_offset(int64_t b, const int64_t (&i)[3]) const {
    return (mask_batch ? b * K : 0) + i[0] * kst[0] + i[1] * kst[1] + i[2] * kst[2];
  }
  __device__ __forceinline__ int64_t maps_base(int64_t b, int64_t c, int64_t m) const {
    return (((maps_bcast_b ? 0 : b) * C + c) * M + m) * Sm;
  }
};

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535LL * 16 ? b : 65535LL * 16);
}

#define GLEAM_GRID_STRIDE(idx, total) \
  for (int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; idx < (total); idx += int64_t(blockDim.x) * gridDim.x)

template <typename T>
__global__ void expand_kernel(Dims d, const c2<T>* __restrict__ x, const c2<T>* __restrict__ maps, int64_t c0,
                              int64_t nc, T scale, c2<T>* __restrict__ buf) {
  const int64_t total = d.B * nc * d.S;
  GLEAM_GRID_STRIDE(t, total) {
    const int64_t j = t % d.S;
    const int64_t bc = t / d.S;
    const int64_t c = bc % nc, b = bc / nc;
    int64_t i[3];
    d.split(j, i);
    d.to_array(i);
    const int64_t o = d.offset(i), om = d.maps_offset(i);
    c2<T> acc{0, 0};
    for (int64_t m = 0; m < d.M; ++m) {
      const c2<T> p = cmul<T>(maps[d.maps_base(b, c0 + c, m) + om], x[(b * d.M + m) * d.S + o]);
      acc.x += p.x;
      acc.y += p.y;
    }
    buf[t] = {acc.x * scale, acc.y * scale};
  }
}

template <typename T>
__global__ void gather_kspace_kernel(Dims d, const c2<T>* __restrict__ y, const T* __restrict__ mask, int64_t c0,
                                     int64_t nc, T scale, c2<T>* __restrict__ buf) {
  const int64_t total = d.B * nc * d.S;
  GLEAM_GRID_STRIDE(t, total) {
    const int64_t j = t % d.S;
    const int64_t bc = t / d.S;
    const int64_t c = bc % nc, b = bc / nc;
    int64_t i[3];
    d.split(j, i);
    d.to_array(i);
    const T w = mask[d.mask_offset(b, i)] * scale;
    const c2<T> v = y[(b * d.C + c0 + c) * d.S + d.offset(i)];
    buf[t] = {v.x * w, v.y * w};
  }
}

template <typename T>
__global__ void scatter_kspace_kernel(Dims d, const c2<T>* __restrict__ buf, const T* __restrict__ mask, int64_t c0,
                                      int64_t nc, c2<T>* __restrict__ y) {
  const int64_t total = d.B * nc * d.S;
  GLEAM_GRID_STRIDE(t, total) {
    const int64_t p = t % d.S;  // array position (writes coalesced)
    const int64_t bc = t / d.S;
    const int64_t c = bc % nc, b = bc / nc;
    int64_t i[3];
    d.split(p, i);
    const T w = mask[d.mask_offset(b, i)];
    d.to_buffer(i);
    const c2<T> v = buf[bc * d.S + d.offset(i)];
    y[(b * d.C + c0 + c) * d.S + p] = {v.x * w, v.y * w};
  }
}

template <typename T>
__global__ void apply_mask_kernel(Dims d, c2<T>* __restrict__ buf, const T* __restrict__ mask, int64_t nc,
                                  bool square) {
  const int64_t total = d.B * nc * d.S;
  GLEAM_GRID_STRIDE(t, total) {
    const int64_t j = t % d.S;
    const int64_t b = t / d.S / nc;
    int64_t i[3];
    d.split(j, i);
    d.to_array(i);
    T w = mask[d.mask_offset(b, i)];
    if (square) w *= w;
    const c2<T> v = buf[t];
    buf[t] = {v.x * w, v.y * w};
  }
}

template <typename T>
__global__ void combine_kernel(Dims d, const c2<T>* __restrict__ buf, const c2<T>* __restrict__ maps, int64_t c0,
                               int64_t nc, bool first, const c2<T>* __restrict__ x, const c2<T>* __restrict__ ahy,
                               const T* __restrict__ step, int64_t step_stride, c2<T>* __restrict__ out) {
  const int64_t total = d.B * d.M * d.S;
  GLEAM_GRID_STRIDE(t, total) {
    const int64_t p = t % d.S;
    const int64_t bm = t / d.S;
    const int64_t m = bm % d.M, b = bm / d.M;
    int64_t i[3];
    d.split(p, i);
    const int64_t om = d.maps_offset(i);
    d.to_buffer(i);
    const int64_t ob = d.offset(i);
    c2<T> acc{0, 0};
    for (int64_t c = 0; c < nc; ++c) {
      const c2<T> v = cmul_conj<T>(maps[d.maps_base(b, c0 + c, m) + om], buf[(b * nc + c) * d.S + ob]);
      acc.x += v.x;
      acc.y += v.y;
    }
    const T s = step ? step[b * step_stride] : T(0);
    const T coef = step ? -s : T(1);
    c2<T> base{0, 0};
    if (!first)
      base = out[t];
    else if (x)
      base = {x[t].x + s * ahy[t].x, x[t].y + s * ahy[t].y};
    out[t] = {base.x + coef * acc.x, base.y + coef * acc.y};
  }
}

}  // namespace

template <typename T>
cudaError_t expand_coils(const SenseGeometry& g, const T* x, const T* maps, int64_t c0, int64_t nc, T scale, T* buf,
                         cudaStream_t stream) {
  const Dims d(g);
  expand_kernel<T><<<blocks_for(d.B * nc * d.S), kThreads, 0, stream>>>(
      d, reinterpret_cast<const c2<T>*>(x), reinterpret_cast<const c2<T>*>(maps), c0, nc, scale,
      reinterpret_cast<c2<T>*>(buf));
  return cudaGetLastError();
}

template <typename T>
cudaError_t gather_kspace(const SenseGeometry& g, const T* y, const T* mask, int64_t c0, int64_t nc, T scale, T* buf,
                          cudaStream_t stream) {
  const Dims d(g);
  gather_kspace_kernel<T><<<blocks_for(d.B * nc * d.S), kThreads, 0, stream>>>(
      d, reinterpret_cast<const c2<T>*>(y), mask, c0, nc, scale, reinterpret_cast<c2<T>*>(buf));
  return cudaGetLastError();
}

template <typename T>
cudaError_t scatter_kspace(const SenseGeometry& g, const T* buf, const T* mask, int64_t c0, int64_t nc, T* y,
                           cudaStream_t stream) {
  const Dims d(g);
  scatter_kspace_kernel<T><<<blocks_for(d.B * nc * d.S), kThreads, 0, stream>>>(
      d, reinterpret_cast<const c2<T>*>(buf), mask, c0, nc, reinterpret_cast<c2<T>*>(y));
  return cudaGetLastError();
}

template <typename T>
cudaError_t apply_mask(const SenseGeometry& g, T* buf, const T* mask, int64_t nc, bool square, cudaStream_t stream) {
  const Dims d(g);
  apply_mask_kernel<T><<<blocks_for(d.B * nc * d.S), kThreads, 0, stream>>>(d, reinterpret_cast<c2<T>*>(buf), mask,
                                                                           nc, square);
  return cudaGetLastError();
}

template <typename T>
cudaError_t combine_coils(const SenseGeometry& g, const T* buf, const T* maps, int64_t c0, int64_t nc, bool first,
                          const T* x, const T* ahy, const T* step, int64_t step_stride, T* out, cudaStream_t stream) {
  const Dims d(g);
  combine_kernel<T><<<blocks_for(d.B * d.M * d.S), kThreads, 0, stream>>>(
      d, reinterpret_cast<const c2<T>*>(buf), reinterpret_cast<const c2<T>*>(maps), c0, nc, first,
      reinterpret_cast<const c2<T>*>(x), reinterpret_cast<const c2<T>*>(ahy), step, step_stride,
      reinterpret_cast<c2<T>*>(out));
  return cudaGetLastError();
}

#define GLEAM_INSTANTIATE(T)                                                                                         \
  template cudaError_t expand_coils<T>(const SenseGeometry&, const T*, const T*, int64_t, int64_t, T, T*,           \
                                       cudaStream_t);                                                                \
  template cudaError_t gather_kspace<T>(const SenseGeometry&, const T*, const T*, int64_t, int64_t, T, T*,          \
                                        cudaStream_t);                                                               \
  template cudaError_t scatter_kspace<T>(const SenseGeometry&, const T*, const T*, int64_t, int64_t, T*,            \
                                         cudaStream_t);                                                              \
  template cudaError_t apply_mask<T>(const SenseGeometry&, T*, const T*, int64_t, bool, cudaStream_t);              \
  template cudaError_t combine_coils<T>(const SenseGeometry&, const T*, const T*, int64_t, int64_t, bool, const T*, \
                                        const T*, const T*, int64_t, T*, cudaStream_t);
GLEAM_INSTANTIATE(float)
GLEAM_INSTANTIATE(double)
#undef GLEAM_INSTANTIATE

}  // namespace gleam::cuda
