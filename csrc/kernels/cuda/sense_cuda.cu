#include "kernels/cuda/sense_cuda.cuh"

#include <algorithm>

#include "kernels/cuda/dims.cuh"

namespace gleam::cuda {

namespace {

using namespace detail;

constexpr int kThreads = 256;

// Grid: x covers spatial positions (grid-stride), y the (batch, coil or set) rows.
inline dim3 grid_for(int64_t spatial, int64_t rows) {
  const int64_t bx = std::min<int64_t>((spatial + kThreads - 1) / kThreads, 4096);
  return dim3(unsigned(std::max<int64_t>(bx, 1)), unsigned(rows));
}

#define GLEAM_SPATIAL_LOOP(p, S) for (I p = blockIdx.x * I(blockDim.x) + threadIdx.x; p < (S); p += I(blockDim.x) * gridDim.x)

template <typename T, typename I>
__global__ void expand_kernel(Dims<I> d, const c2<T>* __restrict__ x, const c2<T>* __restrict__ maps, I c0, I nc,
                              T scale, c2<T>* __restrict__ buf) {
  const I bc = blockIdx.y, c = bc % nc, b = bc / nc;
  GLEAM_SPATIAL_LOOP(j, d.S) {
    I i[3];
    d.split(j, i);
    d.to_array(i);
    const I o = d.offset(i), om = d.maps_offset(i);
    c2<T> acc{0, 0};
    for (I m = 0; m < d.M; ++m) {
      const c2<T> p = cmul<T>(maps[d.maps_base(b, c0 + c, m) + om], x[(b * d.M + m) * d.S + o]);
      acc.x += p.x;
      acc.y += p.y;
    }
    buf[bc * d.S + j] = {acc.x * scale, acc.y * scale};
  }
}

template <typename T, typename I>
__global__ void gather_kspace_kernel(Dims<I> d, const c2<T>* __restrict__ y, const T* __restrict__ mask, I c0, I nc,
                                     T scale, c2<T>* __restrict__ buf) {
  const I bc = blockIdx.y, c = bc % nc, b = bc / nc;
  GLEAM_SPATIAL_LOOP(j, d.S) {
    I i[3];
    d.split(j, i);
    d.to_array(i);
    const T w = mask[d.mask_offset(b, i)] * scale;
    const c2<T> v = y[(b * d.C + c0 + c) * d.S + d.offset(i)];
    buf[bc * d.S + j] = {v.x * w, v.y * w};
  }
}

template <typename T, typename I>
__global__ void scatter_kspace_kernel(Dims<I> d, const c2<T>* __restrict__ buf, const T* __restrict__ mask, I c0,
                                      I nc, c2<T>* __restrict__ y) {
  const I bc = blockIdx.y, c = bc % nc, b = bc / nc;
  GLEAM_SPATIAL_LOOP(p, d.S) {  // array position: writes coalesced
    I i[3];
    d.split(p, i);
    const T w = mask[d.mask_offset(b, i)];
    d.to_buffer(i);
    const c2<T> v = buf[bc * d.S + d.offset(i)];
    y[(b * d.C + c0 + c) * d.S + p] = {v.x * w, v.y * w};
  }
}

template <typename T, typename I>
__global__ void apply_mask_kernel(Dims<I> d, c2<T>* __restrict__ buf, const T* __restrict__ mask, I nc, bool square) {
  const I bc = blockIdx.y, b = bc / nc;
  GLEAM_SPATIAL_LOOP(j, d.S) {
    I i[3];
    d.split(j, i);
    d.to_array(i);
    T w = mask[d.mask_offset(b, i)];
    if (square) w *= w;
    const c2<T> v = buf[bc * d.S + j];
    buf[bc * d.S + j] = {v.x * w, v.y * w};
  }
}

template <typename T, typename I>
__global__ void combine_kernel(Dims<I> d, const c2<T>* __restrict__ buf, const c2<T>* __restrict__ maps, I c0, I nc,
                               bool first, const c2<T>* __restrict__ x, const c2<T>* __restrict__ ahy,
                               const T* __restrict__ step, I step_stride, c2<T>* __restrict__ out) {
  const I bm = blockIdx.y, m = bm % d.M, b = bm / d.M;
  const T s = step ? step[b * step_stride] : T(0);
  const T coef = step ? -s : T(1);
  GLEAM_SPATIAL_LOOP(p, d.S) {
    I i[3];
    d.split(p, i);
    const I om = d.maps_offset(i);
    d.to_buffer(i);
    const I ob = d.offset(i);
    c2<T> acc{0, 0};
    for (I c = 0; c < nc; ++c) {
      const c2<T> v = cmul_conj<T>(maps[d.maps_base(b, c0 + c, m) + om], buf[(b * nc + c) * d.S + ob]);
      acc.x += v.x;
      acc.y += v.y;
    }
    const I t = bm * d.S + p;
    c2<T> base{0, 0};
    if (!first)
      base = out[t];
    else if (x)
      base = {x[t].x + s * ahy[t].x, x[t].y + s * ahy[t].y};
    out[t] = {base.x + coef * acc.x, base.y + coef * acc.y};
  }
}

template <typename T, typename I>
__global__ void outer_maps_kernel(Dims<I> d, const c2<T>* __restrict__ buf, const c2<T>* __restrict__ u, I c0, I nc,
                                  bool accumulate, c2<T>* __restrict__ out) {
  const I bc = blockIdx.y, c = bc % nc, b = bc / nc;
  GLEAM_SPATIAL_LOOP(p, d.S) {  // array position: reads of u and writes coalesced
    I i[3];
    d.split(p, i);
    d.to_buffer(i);
    const c2<T> v = buf[bc * d.S + d.offset(i)];
    for (I m = 0; m < d.M; ++m) {
      const c2<T> w = cmul_conj<T>(u[(b * d.M + m) * d.S + p], v);
      const I t = ((b * d.C + c0 + c) * d.M + m) * d.S + p;
      out[t] = accumulate ? c2<T>{out[t].x + w.x, out[t].y + w.y} : w;
    }
  }
}

// Launches kernel<T, I> with I = uint32_t when possible.
#define GLEAM_LAUNCH(kernel, T, g, grid, stream, ...)                                           \
  do {                                                                                        \
    if (fits32(g))                                                                            \
      kernel<T, uint32_t><<<grid, kThreads, 0, stream>>>(Dims<uint32_t>(g), __VA_ARGS__);     \
    else                                                                                      \
      kernel<T, int64_t><<<grid, kThreads, 0, stream>>>(Dims<int64_t>(g), __VA_ARGS__);       \
  } while (0)

}  // namespace

template <typename T>
cudaError_t expand_coils(const SenseGeometry& g, const T* x, const T* maps, int64_t c0, int64_t nc, T scale, T* buf,
                         cudaStream_t stream) {
  GLEAM_LAUNCH(expand_kernel, T, g, grid_for(g.spatial(), g.batch * nc), stream, reinterpret_cast<const c2<T>*>(x),
               reinterpret_cast<const c2<T>*>(maps), c0, nc, scale, reinterpret_cast<c2<T>*>(buf));
  return cudaGetLastError();
}

template <typename T>
cudaError_t gather_kspace(const SenseGeometry& g, const T* y, const T* mask, int64_t c0, int64_t nc, T scale, T* buf,
                          cudaStream_t stream) {
  GLEAM_LAUNCH(gather_kspace_kernel, T, g, grid_for(g.spatial(), g.batch * nc), stream,
               reinterpret_cast<const c2<T>*>(y), mask, c0, nc, scale, reinterpret_cast<c2<T>*>(buf));
  return cudaGetLastError();
}

template <typename T>
cudaError_t scatter_kspace(const SenseGeometry& g, const T* buf, const T* mask, int64_t c0, int64_t nc, T* y,
                           cudaStream_t stream) {
  GLEAM_LAUNCH(scatter_kspace_kernel, T, g, grid_for(g.spatial(), g.batch * nc), stream,
               reinterpret_cast<const c2<T>*>(buf), mask, c0, nc, reinterpret_cast<c2<T>*>(y));
  return cudaGetLastError();
}

template <typename T>
cudaError_t apply_mask(const SenseGeometry& g, T* buf, const T* mask, int64_t nc, bool square, cudaStream_t stream) {
  GLEAM_LAUNCH(apply_mask_kernel, T, g, grid_for(g.spatial(), g.batch * nc), stream, reinterpret_cast<c2<T>*>(buf),
               mask, nc, square);
  return cudaGetLastError();
}

template <typename T>
cudaError_t combine_coils(const SenseGeometry& g, const T* buf, const T* maps, int64_t c0, int64_t nc, bool first,
                          const T* x, const T* ahy, const T* step, int64_t step_stride, T* out, cudaStream_t stream) {
  GLEAM_LAUNCH(combine_kernel, T, g, grid_for(g.spatial(), g.batch * g.sets), stream,
               reinterpret_cast<const c2<T>*>(buf), reinterpret_cast<const c2<T>*>(maps), c0, nc, first,
               reinterpret_cast<const c2<T>*>(x), reinterpret_cast<const c2<T>*>(ahy), step, step_stride,
               reinterpret_cast<c2<T>*>(out));
  return cudaGetLastError();
}

template <typename T>
cudaError_t outer_maps(const SenseGeometry& g, const T* buf, const T* u, int64_t c0, int64_t nc, bool accumulate,
                       T* out, cudaStream_t stream) {
  // The output (B, C, M, *S) is larger than any array fits32 looks at.
  const auto* bp = reinterpret_cast<const c2<T>*>(buf);
  const auto* up = reinterpret_cast<const c2<T>*>(u);
  auto* op = reinterpret_cast<c2<T>*>(out);
  const dim3 grid = grid_for(g.spatial(), g.batch * nc);
  if (fits32(g) && g.batch * g.coils * g.sets * g.spatial() < (int64_t(1) << 31))
    outer_maps_kernel<T, uint32_t><<<grid, kThreads, 0, stream>>>(Dims<uint32_t>(g), bp, up, uint32_t(c0),
                                                                  uint32_t(nc), accumulate, op);
  else
    outer_maps_kernel<T, int64_t><<<grid, kThreads, 0, stream>>>(Dims<int64_t>(g), bp, up, c0, nc, accumulate, op);
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
                                        const T*, const T*, int64_t, T*, cudaStream_t);                             \
  template cudaError_t outer_maps<T>(const SenseGeometry&, const T*, const T*, int64_t, int64_t, bool, T*,          \
                                     cudaStream_t);
GLEAM_INSTANTIATE(float)
GLEAM_INSTANTIATE(double)
#undef GLEAM_INSTANTIATE

}  // namespace gleam::cuda
