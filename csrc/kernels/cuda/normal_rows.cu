#include "kernels/cuda/normal_rows.cuh"

#include <vector>

#include "kernels/cuda/dims.cuh"

namespace gleam::cuda {

namespace {

using namespace detail;

constexpr int kThreads = 128;
constexpr int kPerThread = int(kMaxRow) / kThreads;  // row positions owned by each thread
constexpr int kMaxStages = 16;

struct RowPlan {
  int n = 1;
  int stages = 0;
  int radix[kMaxStages] = {};
};

RowPlan make_plan(int n) {
  RowPlan p;
  p.n = n;
  auto push = [&](int r) { p.radix[p.stages++] = r; };
  while (n % 4 == 0) { push(4); n /= 4; }
  if (n % 2 == 0) { push(2); n /= 2; }
  for (int f = 3; n > 1; f += 2) {
    if (f * f > n) { push(n); break; }
    while (n % f == 0) { push(f); n /= f; }
  }
  return p;
}

// One Stockham pass for every stage: dst[o], o = q + s (r p + k), is
//   (sum_j src[q + s (p + j m)] w^{(j k mod r) W/r}) * w^{p k s}, with w = exp(-+2 pi i / W).
template <typename T, bool Inv>
__device__ c2<T>* stockham(const RowPlan& plan, const c2<T>* __restrict__ tw, c2<T>* src, c2<T>* dst) {
  const int W = plan.n;
  int s = 1, len = W;
  for (int st = 0; st < plan.stages; ++st) {
    const int r = plan.radix[st], m = len / r, step = W / r;
    for (int o = threadIdx.x; o < W; o += blockDim.x) {
      const int q = o % s, t = o / s, k = t % r, p = t / r;
      const c2<T>* in = src + q + s * p;
      c2<T> acc{0, 0};
      int jk = 0;
      for (int j = 0; j < r; ++j) {
        c2<T> w = tw[jk * step];
        if (Inv) w.y = -w.y;
        const c2<T> v = in[j * s * m];
        acc.x += v.x * w.x - v.y * w.y;
        acc.y += v.x * w.y + v.y * w.x;
        jk += k;
        if (jk >= r) jk -= r;
      }
      c2<T> w = tw[(p * s * k) % W];
      if (Inv) w.y = -w.y;
      dst[o] = {acc.x * w.x - acc.y * w.y, acc.x * w.y + acc.y * w.x};
    }
    __syncthreads();
    c2<T>* tmp = src;
    src = dst;
    dst = tmp;
    s *= r;
    len = m;
  }
  return src;
}

template <typename T, int M>
__global__ void __launch_bounds__(kThreads) normal_rows_kernel(Dims<uint32_t> d, RowPlan plan,
                                                               const c2<T>* __restrict__ x,
                                                               const c2<T>* __restrict__ maps,
                                                               const T* __restrict__ mask,
                                                               const c2<T>* __restrict__ ahy,
                                                               const T* __restrict__ step, uint32_t step_stride,
                                                               bool dc, c2<T>* __restrict__ out) {
  extern __shared__ unsigned char smem_raw[];
  const int W = plan.n, h = W / 2;
  c2<T>* tw = reinterpret_cast<c2<T>*>(smem_raw);
  c2<T>* bufa = tw + W;
  c2<T>* bufb = bufa + W;
  c2<T>* xs = bufb + W;              // (M, W) image row, in FFT order
  T* mk = reinterpret_cast<T*>(xs + M * W);  // mask^2 / W, in FFT order

  // Row -> (batch, i0, i1); the last axis is the transformed one.
  const uint32_t rows_per_batch = d.n[0] * d.n[1];
  const uint32_t b = blockIdx.x / rows_per_batch, rem = blockIdx.x % rows_per_batch;
  uint32_t idx[3] = {rem / d.n[1], rem % d.n[1], 0};
  const uint32_t row_off = d.offset(idx), maps_row = d.maps_offset(idx), mask_row = d.mask_offset(b, idx);

  for (int j = threadIdx.x; j < W; j += blockDim.x) {
    double sn, cs;
    sincospi(-2.0 * j / W, &sn, &cs);
    tw[j] = {T(cs), T(sn)};
    const int a = j + h < W ? j + h : j + h - W;  // buffer index j holds array index (j + W/2) % W
    const T w = mask[mask_row + a * d.kst[2]];
    mk[j] = w * w / T(W);
    for (int m = 0; m < M; ++m) xs[m * W + j] = x[(b * d.M + m) * d.S + row_off + a];
  }
  __syncthreads();

  c2<T> acc[M][kPerThread];
  for (int m = 0; m < M; ++m)
    for (int e = 0; e < kPerThread; ++e) acc[m][e] = {0, 0};

  for (uint32_t c = 0; c < d.C; ++c) {
    const c2<T>* mrow[M];
    for (int m = 0; m < M; ++m) mrow[m] = maps + d.maps_base(b, c, m) + maps_row;
    for (int j = threadIdx.x; j < W; j += blockDim.x) {
      const int a = j + h < W ? j + h : j + h - W;
      c2<T> v{0, 0};
      for (int m = 0; m < M; ++m) {
        const c2<T> p = cmul<T>(mrow[m][a], xs[m * W + j]);
        v.x += p.x;
        v.y += p.y;
      }
      bufa[j] = v;
    }
    __syncthreads();
    c2<T>* k = stockham<T, false>(plan, tw, bufa, bufb);
    for (int j = threadIdx.x; j < W; j += blockDim.x) {
      k[j].x *= mk[j];
      k[j].y *= mk[j];
    }
    __syncthreads();
    c2<T>* other = k == bufa ? bufb : bufa;
    c2<T>* img = stockham<T, true>(plan, tw, k, other);
#pragma unroll
    for (int e = 0; e < kPerThread; ++e) {
      const int j = threadIdx.x + e * kThreads;
      if (j >= W) break;
      const int a = j + h < W ? j + h : j + h - W;
      for (int m = 0; m < M; ++m) {
        const c2<T> v = cmul_conj<T>(mrow[m][a], img[j]);
        acc[m][e].x += v.x;
        acc[m][e].y += v.y;
      }
    }
    __syncthreads();  // the next coil overwrites the buffers
  }

  const T s = dc ? step[b * step_stride] : T(0);
#pragma unroll
  for (int e = 0; e < kPerThread; ++e) {
    const int j = threadIdx.x + e * kThreads;
    if (j >= W) break;
    const int a = j + h < W ? j + h : j + h - W;
    for (int m = 0; m < M; ++m) {
      const uint32_t t = (b * d.M + m) * d.S + row_off + a;
      c2<T> v = acc[m][e];
      if (dc) {
        const c2<T> xv = xs[m * W + j], av = ahy[t];
        v = {xv.x - s * (v.x - av.x), xv.y - s * (v.y - av.y)};
      }
      out[t] = v;
    }
  }
}

}  // namespace

bool normal_rows_supported(const SenseGeometry& g) {
  return !g.fft[0] && !g.fft[1] && g.fft[2] && g.n[2] <= kMaxRow && (g.sets == 1 || g.sets == 2) && fits32(g) &&
         g.batch * g.n[0] * g.n[1] < (int64_t(1) << 31);
}

template <typename T>
cudaError_t normal_rows(const SenseGeometry& g, const T* x, const T* maps, const T* mask, const T* ahy, const T* step,
                        int64_t step_stride, bool dc, T* out, cudaStream_t stream) {
  const RowPlan plan = make_plan(static_cast<int>(g.n[2]));
  const int W = plan.n;
  const size_t smem = sizeof(c2<T>) * size_t(W) * (3 + g.sets) + sizeof(T) * size_t(W);
  const unsigned blocks = static_cast<unsigned>(g.batch * g.n[0] * g.n[1]);
  auto launch = [&](auto kernel) {
    if (smem > 48 * 1024) {
      const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
      if (e != cudaSuccess) return e;
    }
    kernel<<<blocks, kThreads, smem, stream>>>(Dims<uint32_t>(g), plan, reinterpret_cast<const c2<T>*>(x),
                                               reinterpret_cast<const c2<T>*>(maps), mask,
                                               reinterpret_cast<const c2<T>*>(ahy), step, uint32_t(step_stride), dc,
                                               reinterpret_cast<c2<T>*>(out));
    return cudaGetLastError();
  };
  return g.sets == 1 ? launch(normal_rows_kernel<T, 1>) : launch(normal_rows_kernel<T, 2>);
}

template cudaError_t normal_rows<float>(const SenseGeometry&, const float*, const float*, const float*, const float*,
                                       const float*, int64_t, bool, float*, cudaStream_t);
template cudaError_t normal_rows<double>(const SenseGeometry&, const double*, const double*, const double*,
                                         const double*, const double*, int64_t, bool, double*, cudaStream_t);

}  // namespace gleam::cuda
