// Framework-free CUDA kernels for batched conjugate gradients. All per-batch scalars live
// on the device (double precision), so a CG iteration never synchronizes with the host.
// Reductions are two-pass (fixed block partition, then an in-order sum per batch
// element): results do not depend on scheduling.
//
// Vectors are (B, n) complex interleaved of T = float or double.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace gleam::cuda {

struct CgState {
  double* rs;        // (B,) squared residual norm
  double* bnorm;     // (B,) ||b||
  double* alpha;     // (B,)
  double* beta;      // (B,)
  int* active;       // (B,) 1 while an element iterates
  int64_t* iters;    // (B,) iterations run
  double* partial;   // (B, cg_blocks(n)) reduction scratch
};

// Number of partial sums per batch element (the scratch size of CgState::partial is B times this).
int64_t cg_blocks(int64_t n);

// out[b] = sum_i Re(conj(a) b) over each element's n values (a == b gives squared norms).
template <typename T>
cudaError_t batched_dot(const T* a, const T* b, int64_t B, int64_t n, double* partial, double* out,
                        cudaStream_t stream);

// out += lam_b * v for active elements (the lam*I part of the CG operator).
template <typename T>
cudaError_t add_scaled(T* out, const T* v, const T* lam, int64_t lam_stride, const int* active, int64_t B, int64_t n,
                       cudaStream_t stream);

// After rs and bnorm are set: active = bnorm > 0 && (tol <= 0 || sqrt(rs) > tol * bnorm); iters = 0.
cudaError_t cg_start(CgState st, int64_t B, double tol, cudaStream_t stream);

// alpha_b = rs_b / Re<p, Ap>_b (deactivates on breakdown); pap holds Re<p, Ap>.
cudaError_t cg_alpha(CgState st, const double* pap, int64_t B, cudaStream_t stream);

// x += alpha p, r -= alpha Ap for active elements; then rs_new = ||r||^2 (into `rs_new`).
template <typename T>
cudaError_t cg_update_xr(T* x, T* r, const T* p, const T* ap, CgState st, int64_t B, int64_t n, double* rs_new,
                         cudaStream_t stream);

// beta = rs_new / rs, rs = rs_new, iters = it + 1, convergence test (tol > 0).
cudaError_t cg_beta(CgState st, const double* rs_new, int64_t B, int64_t it, double tol, cudaStream_t stream);

// p = r + beta p for active elements.
template <typename T>
cudaError_t cg_update_p(T* p, const T* r, CgState st, int64_t B, int64_t n, cudaStream_t stream);

// resid[b] = sqrt(rs) / bnorm (0 when bnorm == 0), in T.
template <typename T> cudaError_t cg_finish(CgState st, int64_t B, T* resid, cudaStream_t stream);

}  // namespace gleam::cuda
