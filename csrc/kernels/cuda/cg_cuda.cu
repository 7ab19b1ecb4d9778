#include "kernels/cuda/cg_cuda.cuh"

namespace gleam::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kPerBlock = 8192;  // complex values reduced by one block

template <typename T> struct C2;
template <> struct C2<float> { using type = float2; };
template <> struct C2<double> { using type = double2; };
template <typename T> using c2 = typename C2<T>::type;

// Block-wide sum of one double per thread; the result is valid in thread 0.
__device__ double block_sum(double v) {
  __shared__ double warp_sums[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  v = threadIdx.x < kThreads / 32 ? warp_sums[threadIdx.x] : 0.0;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// grid (nblk, B): partial[b * nblk + blk] = sum over the block's segment of Re(conj(a) b).
template <typename T>
__global__ void dot_partial_kernel(const c2<T>* __restrict__ a, const c2<T>* __restrict__ b, int64_t n,
                                   double* __restrict__ partial) {
  const int64_t bi = blockIdx.y, blk = blockIdx.x, nblk = gridDim.x;
  const int64_t lo = blk * kPerBlock, hi = min(n, lo + kPerBlock);
  const c2<T>* pa = a + bi * n;
  const c2<T>* pb = b + bi * n;
  double s = 0;
  for (int64_t i = lo + threadIdx.x; i < hi; i += kThreads) {
    const c2<T> u = pa[i], v = pb[i];
    s += double(u.x) * double(v.x) + double(u.y) * double(v.y);
  }
  s = block_sum(s);
  if (threadIdx.x == 0) partial[bi * nblk + blk] = s;
}

__global__ void finish_sum_kernel(const double* __restrict__ partial, int64_t B, int64_t nblk, double* __restrict__ out) {
  const int64_t bi = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bi >= B) return;
  double s = 0;
  for (int64_t k = 0; k < nblk; ++k) s += partial[bi * nblk + k];  // fixed order: deterministic
  out[bi] = s;
}

template <typename T>
__global__ void add_scaled_kernel(c2<T>* __restrict__ out, const c2<T>* __restrict__ v, const T* __restrict__ lam,
                                  int64_t lam_stride, const int* __restrict__ active, int64_t B, int64_t n) {
  const int64_t total = B * n;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(blockDim.x) * gridDim.x) {
    const int64_t bi = t / n;
    if (active && !active[bi]) continue;
    const T l = lam[bi * lam_stride];
    out[t].x += l * v[t].x;
    out[t].y += l * v[t].y;
  }
}

__global__ void start_kernel(CgState st, int64_t B, double tol) {
  const int64_t bi = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bi >= B) return;
  st.bnorm[bi] = sqrt(st.bnorm[bi]);  // arrives as ||b||^2
  st.iters[bi] = 0;
  st.active[bi] = st.bnorm[bi] > 0 && (tol <= 0 || sqrt(st.rs[bi]) > tol * st.bnorm[bi]);
}

__global__ void alpha_kernel(CgState st, const double* __restrict__ pap, int64_t B) {
  const int64_t bi = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bi >= B || !st.active[bi]) return;
  if (!(pap[bi] > 0)) {
    st.active[bi] = 0;
    st.alpha[bi] = 0;
    return;
  }
  st.alpha[bi] = st.rs[bi] / pap[bi];
}

template <typename T>
__global__ void update_xr_kernel(c2<T>* __restrict__ x, c2<T>* __restrict__ r, const c2<T>* __restrict__ p,
                                 const c2<T>* __restrict__ ap, CgState st, int64_t n) {
  const int64_t bi = blockIdx.y, blk = blockIdx.x, nblk = gridDim.x;
  const int64_t lo = blk * kPerBlock, hi = min(n, lo + kPerBlock);
  const bool on = st.active[bi] != 0;
  const T a = static_cast<T>(st.alpha[bi]);
  double s = 0;
  for (int64_t i = bi * n + lo + threadIdx.x; i < bi * n + hi; i += kThreads) {
    c2<T> rv = r[i];
    if (on) {
      const c2<T> pv = p[i], av = ap[i];
      x[i].x += a * pv.x;
      x[i].y += a * pv.y;
      rv.x -= a * av.x;
      rv.y -= a * av.y;
      r[i] = rv;
    }
    s += double(rv.x) * double(rv.x) + double(rv.y) * double(rv.y);
  }
  s = block_sum(s);
  if (threadIdx.x == 0) st.partial[bi * nblk + blk] = s;
}

__global__ void beta_kernel(CgState st, const double* __restrict__ rs_new, int64_t B, int64_t it, double tol) {
  const int64_t bi = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bi >= B || !st.active[bi]) return;
  st.beta[bi] = st.rs[bi] > 0 ? rs_new[bi] / st.rs[bi] : 0.0;
  st.rs[bi] = rs_new[bi];
  st.iters[bi] = it + 1;
  if (tol > 0 && sqrt(rs_new[bi]) <= tol * st.bnorm[bi]) st.active[bi] = 0;
}

template <typename T>
__global__ void update_p_kernel(c2<T>* __restrict__ p, const c2<T>* __restrict__ r, CgState st, int64_t B,
                                int64_t n) {
  const int64_t total = B * n;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(blockDim.x) * gridDim.x) {
    const int64_t bi = t / n;
    if (!st.active[bi]) continue;
    const T be = static_cast<T>(st.beta[bi]);
    p[t].x = r[t].x + be * p[t].x;
    p[t].y = r[t].y + be * p[t].y;
  }
}

template <typename T> __global__ void finish_kernel(CgState st, int64_t B, T* __restrict__ resid) {
  const int64_t bi = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (bi >= B) return;
  resid[bi] = static_cast<T>(st.bnorm[bi] > 0 ? sqrt(st.rs[bi]) / st.bnorm[bi] : 0.0);
}

unsigned elementwise_blocks(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535LL * 16 ? b : 65535LL * 16);
}
unsigned batch_blocks(int64_t B) { return static_cast<unsigned>((B + kThreads - 1) / kThreads); }

}  // namespace

int64_t cg_blocks(int64_t n) { return (n + kPerBlock - 1) / kPerBlock; }

template <typename T>
cudaError_t batched_dot(const T* a, const T* b, int64_t B, int64_t n, double* partial, double* out,
                        cudaStream_t stream) {
  const int64_t nblk = cg_blocks(n);
  dot_partial_kernel<T><<<dim3(unsigned(nblk), unsigned(B)), kThreads, 0, stream>>>(
      reinterpret_cast<const c2<T>*>(a), reinterpret_cast<const c2<T>*>(b), n, partial);
  finish_sum_kernel<<<batch_blocks(B), kThreads, 0, stream>>>(partial, B, nblk, out);
  return cudaGetLastError();
}

template <typename T>
cudaError_t add_scaled(T* out, const T* v, const T* lam, int64_t lam_stride, const int* active, int64_t B, int64_t n,
                       cudaStream_t stream) {
  add_scaled_kernel<T><<<elementwise_blocks(B * n), kThreads, 0, stream>>>(
      reinterpret_cast<c2<T>*>(out), reinterpret_cast<const c2<T>*>(v), lam, lam_stride, active, B, n);
  return cudaGetLastError();
}

cudaError_t cg_start(CgState st, int64_t B, double tol, cudaStream_t stream) {
  start_kernel<<<batch_blocks(B), kThreads, 0, stream>>>(st, B, tol);
  return cudaGetLastError();
}

cudaError_t cg_alpha(CgState st, const double* pap, int64_t B, cudaStream_t stream) {
  alpha_kernel<<<batch_blocks(B), kThreads, 0, stream>>>(st, pap, B);
  return cudaGetLastError();
}

template <typename T>
cudaError_t cg_update_xr(T* x, T* r, const T* p, const T* ap, CgState st, int64_t B, int64_t n, double* rs_new,
                         cudaStream_t stream) {
  const int64_t nblk = cg_blocks(n);
  update_xr_kernel<T><<<dim3(unsigned(nblk), unsigned(B)), kThreads, 0, stream>>>(
      reinterpret_cast<c2<T>*>(x), reinterpret_cast<c2<T>*>(r), reinterpret_cast<const c2<T>*>(p),
      reinterpret_cast<const c2<T>*>(ap), st, n);
  finish_sum_kernel<<<batch_blocks(B), kThreads, 0, stream>>>(st.partial, B, nblk, rs_new);
  return cudaGetLastError();
}

cudaError_t cg_beta(CgState st, const double* rs_new, int64_t B, int64_t it, double tol, cudaStream_t stream) {
  beta_kernel<<<batch_blocks(B), kThreads, 0, stream>>>(st, rs_new, B, it, tol);
  return cudaGetLastError();
}

template <typename T>
cudaError_t cg_update_p(T* p, const T* r, CgState st, int64_t B, int64_t n, cudaStream_t stream) {
  update_p_kernel<T><<<elementwise_blocks(B * n), kThreads, 0, stream>>>(
      reinterpret_cast<c2<T>*>(p), reinterpret_cast<const c2<T>*>(r), st, B, n);
  return cudaGetLastError();
}

template <typename T> cudaError_t cg_finish(CgState st, int64_t B, T* resid, cudaStream_t stream) {
  finish_kernel<T><<<batch_blocks(B), kThreads, 0, stream>>>(st, B, resid);
  return cudaGetLastError();
}

#define GLEAM_INSTANTIATE(T)                                                                                       \
  template cudaError_t batched_dot<T>(const T*, const T*, int64_t, int64_t, double*, double*, cudaStream_t);      \
  template cudaError_t add_scaled<T>(T*, const T*, const T*, int64_t, const int*, int64_t, int64_t, cudaStream_t); \
  template cudaError_t cg_update_xr<T>(T*, T*, const T*, const T*, CgState, int64_t, int64_t, double*,             \
                                       cudaStream_t);                                                              \
  template cudaError_t cg_update_p<T>(T*, const T*, CgState, int64_t, int64_t, cudaStream_t);                     \
  template cudaError_t cg_finish<T>(CgState, int64_t, T*, cudaStream_t);
GLEAM_INSTANTIATE(float)
GLEAM_INSTANTIATE(double)
#undef GLEAM_INSTANTIATE

}  // namespace gleam::cuda
