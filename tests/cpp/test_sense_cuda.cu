// CUDA kernels of the SENSE ops against host loops, the expand/combine adjoint pair, and
// the batched CG kernels solving a diagonal system. Skips when no CUDA device is present.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <random>
#include <vector>

#include "kernels/cpu/sense.h"
#include "kernels/cuda/cg_cuda.cuh"
#include "kernels/cuda/normal_rows.cuh"
#include "kernels/cuda/sense_cuda.cuh"
#include "sense_test_util.h"

using namespace gleam;
using namespace gleam::testing;

namespace {

bool have_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

#define SKIP_WITHOUT_GPU() \
  if (!have_device()) GTEST_SKIP() << "no CUDA device present"

#define CUDA_OK(expr) ASSERT_EQ((expr), cudaSuccess) << cudaGetErrorString(cudaGetLastError())

template <typename U> struct DeviceArray {
  U* ptr = nullptr;
  size_t count = 0;
  explicit DeviceArray(const std::vector<U>& host) : count(host.size()) {
    EXPECT_EQ(cudaMalloc(&ptr, sizeof(U) * std::max<size_t>(count, 1)), cudaSuccess);
    EXPECT_EQ(cudaMemcpy(ptr, host.data(), sizeof(U) * count, cudaMemcpyHostToDevice), cudaSuccess);
  }
  explicit DeviceArray(size_t n) : count(n) {
    EXPECT_EQ(cudaMalloc(&ptr, sizeof(U) * std::max<size_t>(count, 1)), cudaSuccess);
    EXPECT_EQ(cudaMemset(ptr, 0xff, sizeof(U) * count), cudaSuccess);  // poison: NaN for floats
  }
  ~DeviceArray() { cudaFree(ptr); }
  std::vector<U> get() const {
    std::vector<U> h(count);
    EXPECT_EQ(cudaMemcpy(h.data(), ptr, sizeof(U) * count, cudaMemcpyDeviceToHost), cudaSuccess);
    return h;
  }
  template <typename R> R* as() const { return reinterpret_cast<R*>(ptr); }
};

// Buffer index j <-> array index (j + n/2) % n on transformed axes.
int64_t to_array_offset(const SenseGeometry& g, int64_t j) {
  int64_t i[3] = {j / (g.n[1] * g.n[2]), (j / g.n[2]) % g.n[1], j % g.n[2]};
  for (int a = 0; a < 3; ++a)
    if (g.fft[a]) i[a] = (i[a] + g.n[a] / 2) % g.n[a];
  return (i[0] * g.n[1] + i[1]) * g.n[2] + i[2];
}

template <typename T> std::vector<std::complex<T>> host_expand(const Problem<T>& p, int64_t c0, int64_t nc) {
  const auto& g = p.g;
  const int64_t S = g.spatial();
  std::vector<std::complex<T>> buf(size_t(g.batch * nc * S));
  for (int64_t b = 0; b < g.batch; ++b)
    for (int64_t c = 0; c < nc; ++c)
      for (int64_t j = 0; j < S; ++j) {
        const int64_t i = to_array_offset(g, j);
        std::complex<T> acc = 0;
        for (int64_t m = 0; m < g.sets; ++m) acc += map_at(p, b, c0 + c, m, i) * p.x[size_t((b * g.sets + m) * S + i)];
        buf[size_t((b * nc + c) * S + j)] = acc;
      }
  return buf;
}

SenseGeometry cuda_case(int which) {
  switch (which) {
    case 0: return make_geometry(2, 5, 1, {1, 7, 6}, {false, true, true}, {1, 1, 6});
    case 1: return make_geometry(1, 4, 2, {3, 5, 9}, {true, true, true}, {1, 5, 9});
    default: return make_geometry(2, 3, 1, {4, 6, 5}, {false, true, true}, {4, 1, 5}, true, true);
  }
}

template <typename T> double tol() { return sizeof(T) == 4 ? 2e-6 : 1e-13; }

template <typename T> class SenseCuda : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(SenseCuda, Types);

}  // namespace

TYPED_TEST(SenseCuda, ExpandMatchesHost) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  for (int k = 0; k < 3; ++k) {
    auto p = random_problem<T>(cuda_case(k), 40 + k);
    const int64_t c0 = 1, nc = p.g.coils - 1;
    DeviceArray<std::complex<T>> x(p.x), maps(p.maps), buf(size_t(p.g.batch * nc * p.g.spatial()));
    CUDA_OK(cuda::expand_coils<T>(p.g, x.template as<T>(), maps.template as<T>(), c0, nc, T(1),
                                  buf.template as<T>(), nullptr));
    EXPECT_LT(rel_error(buf.get(), host_expand(p, c0, nc)), tol<T>()) << "case " << k;
  }
}

TYPED_TEST(SenseCuda, CombineIsAdjointOfExpand) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  for (int k = 0; k < 3; ++k) {
    auto p = random_problem<T>(cuda_case(k), 50 + k);
    const auto& g = p.g;
    const int64_t nc = g.coils, S = g.spatial();
    std::mt19937 rng(7);
    std::normal_distribution<double> nd;
    std::vector<std::complex<T>> hb(size_t(g.batch * nc * S));
    for (auto& v : hb) v = {T(nd(rng)), T(nd(rng))};
    DeviceArray<std::complex<T>> x(p.x), maps(p.maps), buf(hb), ex(hb.size()), out(p.x.size());
    CUDA_OK(cuda::expand_coils<T>(g, x.template as<T>(), maps.template as<T>(), 0, nc, T(1), ex.template as<T>(),
                                  nullptr));
    CUDA_OK(cuda::combine_coils<T>(g, buf.template as<T>(), maps.template as<T>(), 0, nc, true, nullptr, nullptr,
                                   nullptr, 0, out.template as<T>(), nullptr));
    auto e = ex.get(), o = out.get();
    cld lhs = 0, rhs = 0;
    long double ne = 0, nb = 0;
    for (size_t i = 0; i < e.size(); ++i) {
      lhs += std::conj(cld(hb[i])) * cld(e[i]);
      ne += std::norm(cld(e[i]));
      nb += std::norm(cld(hb[i]));
    }
    for (size_t i = 0; i < o.size(); ++i) rhs += std::conj(cld(o[i])) * cld(p.x[i]);
    EXPECT_LT(double(std::abs(lhs - rhs) / std::sqrt(ne * nb)), sizeof(T) == 4 ? 1e-6 : 1e-14) << "case " << k;
  }
}

TYPED_TEST(SenseCuda, KspaceGatherScatterAndMask) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  for (int k = 0; k < 3; ++k) {
    auto p = random_problem<T>(cuda_case(k), 60 + k);
    const auto& g = p.g;
    const int64_t nc = g.coils, S = g.spatial();
    DeviceArray<std::complex<T>> y(p.y), buf(size_t(g.batch * nc * S)), y2(p.y.size());
    DeviceArray<T> mask(p.mask);
    CUDA_OK(cuda::gather_kspace<T>(g, y.template as<T>(), mask.ptr, 0, nc, T(1), buf.template as<T>(), nullptr));
    CUDA_OK(cuda::apply_mask<T>(g, buf.template as<T>(), mask.ptr, nc, true, nullptr));
    CUDA_OK(cuda::scatter_kspace<T>(g, buf.template as<T>(), mask.ptr, 0, nc, y2.template as<T>(), nullptr));
    // gather (mask), square mask, scatter (mask): y * mask^4, in place, for a binary mask y * mask.
    std::vector<std::complex<T>> ref(p.y.size());
    for (int64_t b = 0; b < g.batch; ++b)
      for (int64_t c = 0; c < nc; ++c)
        for (int64_t s = 0; s < S; ++s) {
          const int64_t i0 = s / (g.n[1] * g.n[2]), i1 = (s / g.n[2]) % g.n[1], i2 = s % g.n[2];
          const T w = static_cast<T>(mask_at(p, b, i0, i1, i2));
          ref[size_t((b * nc + c) * S + s)] = p.y[size_t((b * nc + c) * S + s)] * (w * w * w * w);
        }
    EXPECT_LT(rel_error(y2.get(), ref), tol<T>()) << "case " << k;
  }
}

namespace {
template <typename T> __global__ void diag_apply(const T* d, const T* v, T* out, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) {
    out[2 * i] = d[i] * v[2 * i];
    out[2 * i + 1] = d[i] * v[2 * i + 1];
  }
}
}  // namespace

TYPED_TEST(SenseCuda, ConjugateGradientKernelsSolveDiagonalSystem) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const int64_t B = 3, n = 20000;  // spans several reduction blocks
  std::mt19937 rng(9);
  std::uniform_real_distribution<double> ud(0.5, 2.0);
  std::normal_distribution<double> nd;
  std::vector<T> d(size_t(B * n)), lam{T(0.1), T(0.5), T(2.0)};
  std::vector<std::complex<T>> b(size_t(B * n));
  for (auto& v : d) v = T(ud(rng));
  for (auto& v : b) v = {T(nd(rng)), T(nd(rng))};
  DeviceArray<T> dd(d), dl(lam);
  DeviceArray<std::complex<T>> db(b), x(std::vector<std::complex<T>>(b.size())), r(b), p(b), ap(b.size());
  const int64_t nblk = cuda::cg_blocks(n);
  DeviceArray<double> scal(std::vector<double>(size_t(7 * B + B * nblk), 0.0));
  DeviceArray<int> flags(std::vector<int>(size_t(B), 0));
  DeviceArray<int64_t> iters(std::vector<int64_t>(size_t(B), 0));
  double* s = scal.ptr;
  cuda::CgState st{s, s + B, s + 2 * B, s + 3 * B, flags.ptr, iters.ptr, s + 7 * B};
  CUDA_OK(cuda::batched_dot<T>(r.template as<T>(), r.template as<T>(), B, n, st.partial, st.rs, nullptr));
  CUDA_OK(cuda::batched_dot<T>(db.template as<T>(), db.template as<T>(), B, n, st.partial, st.bnorm, nullptr));
  CUDA_OK(cuda::cg_start(st, B, 1e-6, nullptr));
  for (int64_t it = 0; it < 100; ++it) {
    diag_apply<T><<<unsigned((B * n + 255) / 256), 256>>>(dd.ptr, p.template as<T>(), ap.template as<T>(), B * n);
    CUDA_OK(cudaGetLastError());
    CUDA_OK(cuda::add_scaled<T>(ap.template as<T>(), p.template as<T>(), dl.ptr, 1, st.active, B, n, nullptr));
    CUDA_OK(cuda::batched_dot<T>(p.template as<T>(), ap.template as<T>(), B, n, st.partial, s + 4 * B, nullptr));
    CUDA_OK(cuda::cg_alpha(st, s + 4 * B, B, nullptr));
    CUDA_OK(cuda::cg_update_xr<T>(x.template as<T>(), r.template as<T>(), p.template as<T>(), ap.template as<T>(),
                                  st, B, n, s + 5 * B, nullptr));
    CUDA_OK(cuda::cg_beta(st, s + 5 * B, B, it, 1e-6, nullptr));
    CUDA_OK(cuda::cg_update_p<T>(p.template as<T>(), r.template as<T>(), st, B, n, nullptr));
  }
  DeviceArray<T> resid(static_cast<size_t>(B));
  CUDA_OK(cuda::cg_finish<T>(st, B, resid.ptr, nullptr));
  auto hx = x.get();
  auto hr = resid.get();
  auto hi = iters.get();
  for (int64_t bi = 0; bi < B; ++bi) {
    long double e = 0, rn = 0;
    for (int64_t i = bi * n; i < (bi + 1) * n; ++i) {
      const cld want = cld(b[size_t(i)]) / (long double)(d[size_t(i)] + lam[size_t(bi)]);
      e += std::norm(cld(hx[size_t(i)]) - want);
      rn += std::norm(want);
    }
    EXPECT_LT(double(std::sqrt(e / rn)), sizeof(T) == 4 ? 1e-4 : 1e-5) << "batch " << bi;
    EXPECT_LE(double(hr[size_t(bi)]), 1e-6);
    EXPECT_GT(hi[size_t(bi)], 0);
    EXPECT_LT(hi[size_t(bi)], 100);
  }
}

// The fused row kernel against the CPU kernels (themselves checked against naive sums).
TYPED_TEST(SenseCuda, FusedRowNormalAndDcStepMatchCpu) {
  SKIP_WITHOUT_GPU();
  using T = TypeParam;
  const std::vector<SenseGeometry> geoms = {
      make_geometry(2, 5, 1, {1, 7, 368}, {false, false, true}, {1, 1, 368}),
      make_geometry(1, 3, 2, {1, 4, 23}, {false, false, true}, {1, 1, 23}),
      make_geometry(2, 4, 1, {3, 5, 160}, {false, false, true}, {3, 1, 160}, true, true),  // cine
      make_geometry(1, 2, 1, {1, 3, 1}, {false, false, true}, {1, 1, 1}),
  };
  for (size_t k = 0; k < geoms.size(); ++k) {
    const auto& g = geoms[k];
    ASSERT_TRUE(cuda::normal_rows_supported(g)) << "case " << k;
    auto p = random_problem<T>(g, 70 + unsigned(k));
    std::vector<std::complex<T>> ahy(p.x.size()), want(p.x.size()), want_dc(p.x.size());
    for (size_t i = 0; i < ahy.size(); ++i) ahy[i] = p.y[i % p.y.size()];
    std::vector<T> step(size_t(g.batch));
    for (size_t b = 0; b < step.size(); ++b) step[b] = T(0.25) + T(b);
    cpu::sense_normal<T>(g, p.x.data(), p.maps.data(), p.mask.data(), want.data(), cpu::serial_executor());
    cpu::dc_gradient_step<T>(g, p.x.data(), ahy.data(), p.maps.data(), p.mask.data(), step.data(), 1, want_dc.data(),
                             cpu::serial_executor());
    DeviceArray<std::complex<T>> x(p.x), maps(p.maps), a(ahy), out(p.x.size()), out_dc(p.x.size());
    DeviceArray<T> mask(p.mask), st(step);
    CUDA_OK(cuda::normal_rows<T>(g, x.template as<T>(), maps.template as<T>(), mask.ptr, nullptr, nullptr, 0, false,
                                 out.template as<T>(), nullptr));
    CUDA_OK(cuda::normal_rows<T>(g, x.template as<T>(), maps.template as<T>(), mask.ptr, a.template as<T>(), st.ptr, 1,
                                 true, out_dc.template as<T>(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_LT(rel_error(out.get(), want), sizeof(T) == 4 ? 5e-6 : 1e-12) << "case " << k;
    EXPECT_LT(rel_error(out_dc.get(), want_dc), sizeof(T) == 4 ? 5e-6 : 1e-12) << "case " << k;
  }
}
