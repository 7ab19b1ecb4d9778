#include "kernels/cuda/normal_rows.cuh"

#include <vector>

#include "kernels/cuda/dims.cuh"

namespace gleam::cuda {

namespace {

using namespace detail;

constexpr int kThreads = 128;
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

template <typename T> __device__ __forceinline__ c2<T> root(const c2<T>* tw, int idx, bool inv) {
  c2<T> w = tw[idx];
  if (inv) w.y = -w.y;
  return w;
}

// One radix-R butterfly per thread (R = 2, 3, 4, 5): reads R inputs once, writes R outputs.
template <typename T, int R, bool Inv>
__device__ __forceinline__ void butterfly(const c2<T>* tw, int W, const c2<T>* in, int in_stride, c2<T>* out,
                                          int out_stride, int twiddle_base) {
  c2<T> a[R];
#pragma unroll
  for (int j = 0; j < R; ++j) a[j] = in[j * in_stride];
#pragma unroll
  for (int k = 0; k < R; ++k) {
    c2<T> acc = a[0];
#pragma unroll
    for (int j = 1; j < R; ++j) {
      const c2<T> w = root<T>(tw, ((j * k) % R) * (W / R), Inv);
      acc.x += a[j].x * w.x - a[j].y * w.y;
      acc.y += a[j].x * w.y + a[j].y * w.x;
    }
    const c2<T> w = root<T>(tw, (twiddle_base * k) % W, Inv);
    out[k * out_stride] = {acc.x * w.x - acc.y * w.y, acc.x * w.y + acc.y * w.x};
  }
}

// Stockham DIF transform of `groups` rows of length W held back to back in src; returns
// the buffer holding the result (src or dst). Small radices run one butterfly per thread;
// other (odd prime) radices compute one output element per thread:
//   dst[o], o = q + s (r p + k), = (sum_j src[q + s (p + j m)] w^{(j k mod r) W/r}) * w^{p k s}.
template <typename T, bool Inv>
__device__ c2<T>* stockham(const RowPlan& plan, const c2<T>* __restrict__ tw, c2<T>* src, c2<T>* dst, int groups) {
  const int W = plan.n;
  int s = 1, len = W;
  for (int st = 0; st < plan.stages; ++st) {
    const int r = plan.radix[st], m = len / r;
    if (r <= 5) {
      const int per = W / r, total = per * groups;
      for (int t = threadIdx.x; t < total; t += blockDim.x) {
        const int g = t / per, bf = t % per, q = bf % s, p = bf / s;
        const c2<T>* in = src + g * W + q + s * p;
        c2<T>* out = dst + g * W + q + s * r * p;
        switch (r) {
          case 2: butterfly<T, 2, Inv>(tw, W, in, s * m, out, s, p * s); break;
          case 3: butterfly<T, 3, Inv>(tw, W, in, s * m, out, s, p * s); break;
          case 4: butterfly<T, 4, Inv>(tw, W, in, s * m, out, s, p * s); break;
          default: butterfly<T, 5, Inv>(tw, W, in, s * m, out, s, p * s); break;
        }
      }
    } else {
      const int step = W / r, total = W * groups;
      for (int t = threadIdx.x; t < total; t += blockDim.x) {
        const int g = t / W, o = t % W;
        const int q = o % s, u = o / s, k = u % r, p = u / r;
        const c2<T>* in = src + g * W + q + s * p;
        c2<T> acc{0, 0};
        int jk = 0;
        for (int j = 0; j < r; ++j) {
          const c2<T> w = root<T>(tw, jk * step, Inv);
          const c2<T> v = in[j * s * m];
          acc.x += v.x * w.x - v.y * w.y;
          acc.y += v.x * w.y + v.y * w.x;
          jk += k;
          if (jk >= r) jk -= r;
        }
        const c2<T> w = root<T>(tw, (p * s * k) % W, Inv);
        dst[g * W + o] = {acc.x * w.x - acc.y * w.y, acc.x * w.y + acc.y * w.x};
      }
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

// Coils transformed together by one block: more independent butterflies per pass.
__host__ __device__ inline int coil_group(int W) { return W <= 512 ? 4 : 2; }

template <typename T, int M>
__global__ void __launch_bounds__(kThreads) normal_rows_kernel(Dims<uint32_t> d, RowPlan plan,
                                                               const c2<T>* __restrict__ x,
                                                               const c2<T>* __restrict__ maps,
                                                               const T* __restrict__ mask,
                                                               const c2<T>* __restrict__ ahy,
                                                               const T* __restrict__ step, uint32_t step_stride,
                                                               bool dc, c2<T>* __restrict__ out) {
  extern __shared__ unsigned char smem_raw[];
  const int W = plan.n, h = W / 2, G = coil_group(W);
  c2<T>* tw = reinterpret_cast<c2<T>*>(smem_raw);
  c2<T>* bufa = tw + W;         // (G, W)
  c2<T>* bufb = bufa + G * W;   // (G, W)
  c2<T>* xs = bufb + G * W;     // (M, W) image row, FFT order
  c2<T>* acc = xs + M * W;      // (M, W) coil sum, FFT order
  T* mk = reinterpret_cast<T*>(acc + M * W);  // mask^2 / W, FFT order

  // Row -> (batch, i0, i1); the last axis is the transformed one.
  const uint32_t rows_per_batch = d.n[0] * d.n[1];
  const uint32_t b = blockIdx.x / rows_per_batch, rem = blockIdx.x % rows_per_batch;
  uint32_t idx[3] = {rem / d.n[1], rem % d.n[1], 0};
  const uint32_t row_off = d.offset(idx), maps_row = d.maps_offset(idx), mask_row = d.mask_offset(b, idx);

  // Buffer index j holds array index (j + W/2) % W: the fftshift pair folded into the indexing.
  for (int j = threadIdx.x; j < W; j += blockDim.x) {
    double sn, cs;
    sincospi(-2.0 * j / W, &sn, &cs);
    tw[j] = {T(cs), T(sn)};
    const int a = j + h < W ? j + h : j + h - W;
    const T w = mask[mask_row + a * d.kst[2]];
    mk[j] = w * w / T(W);
    for (int m = 0; m < M; ++m) {
      xs[m * W + j] = x[(b * d.M + m) * d.S + row_off + a];
      acc[m * W + j] = {0, 0};
    }
  }
  __syncthreads();

  for (uint32_t c0 = 0; c0 < d.C; c0 += G) {
    const int ng = min(G, int(d.C - c0));
    for (int t = threadIdx.x; t < ng * W; t += blockDim.x) {
      const int g = t / W, j = t % W, a = j + h < W ? j + h : j + h - W;
      c2<T> v{0, 0};
      for (int m = 0; m < M; ++m) {
        const c2<T> p = cmul<T>(maps[d.maps_base(b, c0 + g, m) + maps_row + a], xs[m * W + j]);
        v.x += p.x;
        v.y += p.y;
      }
      bufa[t] = v;
    }
    __syncthreads();
    c2<T>* k = stockham<T, false>(plan, tw, bufa, bufb, ng);
    for (int t = threadIdx.x; t < ng * W; t += blockDim.x) {
      const T w = mk[t % W];
      k[t].x *= w;
      k[t].y *= w;
    }
    __syncthreads();
    c2<T>* img = stockham<T, true>(plan, tw, k, k == bufa ? bufb : bufa, ng);
    for (int t = threadIdx.x; t < M * W; t += blockDim.x) {  // each thread owns its positions
      const int m = t / W, j = t % W, a = j + h < W ? j + h : j + h - W;
      c2<T> sum = acc[t];
      for (int g = 0; g < ng; ++g) {
        const c2<T> v = cmul_conj<T>(maps[d.maps_base(b, c0 + g, m) + maps_row + a], img[g * W + j]);
        sum.x += v.x;
        sum.y += v.y;
      }
      acc[t] = sum;
    }
    __syncthreads();  // the next group overwrites the buffers
  }

  const T s = dc ? step[b * step_stride] : T(0);
  for (int t = threadIdx.x; t < M * W; t += blockDim.x) {
    const int m = t / W, j = t % W, a = j + h < W ? j + h : j + h - W;
    const uint32_t o = (b * d.M + m) * d.S + row_off + a;
    c2<T> v = acc[t];
    if (dc) {
      const c2<T> xv = xs[t], av = ahy[o];
      v = {xv.x - s * (v.x - av.x), xv.y - s * (v.y - av.y)};
    }
    out[o] = v;
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
  const size_t smem =
      sizeof(c2<T>) * size_t(W) * (1 + 2 * coil_group(W) + 2 * g.sets) + sizeof(T) * size_t(W);
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
