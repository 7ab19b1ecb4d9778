// Lane-parallel complex arithmetic on GCC/Clang vector extensions.
//
// The CPU kernels batch independent transforms (one per coil) into the lanes of a
// vector: a `CVec<V>` holds `lanes<V>` complex numbers in split (re, im) form, so
// every butterfly is plain vector arithmetic with no shuffles. The vector width is
// fixed at 32 bytes (8 floats / 4 doubles) and a half-width variant (16 bytes) is
// used for a short last coil group; the compiler maps them onto SSE/AVX/AVX-512.
#pragma once

#include <cstddef>
#include <cstring>

namespace gleam::simd {

// GCC gives vector types the alias set of their element type, so kernels may also
// address single lanes through scalar pointers.
typedef float f32x8 __attribute__((vector_size(32)));
typedef float f32x4 __attribute__((vector_size(16)));
typedef double f64x4 __attribute__((vector_size(32)));
typedef double f64x2 __attribute__((vector_size(16)));

template <typename V> struct VecInfo;
template <> struct VecInfo<f32x8> { using scalar = float; static constexpr int lanes = 8; };
template <> struct VecInfo<f32x4> { using scalar = float; static constexpr int lanes = 4; };
template <> struct VecInfo<f64x4> { using scalar = double; static constexpr int lanes = 4; };
template <> struct VecInfo<f64x2> { using scalar = double; static constexpr int lanes = 2; };

template <typename V> constexpr int lanes_v = VecInfo<V>::lanes;
template <typename V> using scalar_t = typename VecInfo<V>::scalar;

// `lanes` complex numbers in split form.
template <typename V> struct CVec {
  V re, im;
};

template <typename V> inline V splat(scalar_t<V> s) { return V{} + s; }

template <typename V> inline CVec<V> zero() { return {V{}, V{}}; }
template <typename V> inline CVec<V> operator+(CVec<V> a, CVec<V> b) { return {a.re + b.re, a.im + b.im}; }
template <typename V> inline CVec<V> operator-(CVec<V> a, CVec<V> b) { return {a.re - b.re, a.im - b.im}; }
template <typename V> inline CVec<V> operator*(CVec<V> a, CVec<V> b) {
  return {a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}
// Scaling by a real scalar or a real per-lane vector.
template <typename V> inline CVec<V> scale(CVec<V> a, V s) { return {a.re * s, a.im * s}; }
// Multiplication by a complex scalar broadcast to all lanes.
template <typename V> inline CVec<V> mul_scalar(CVec<V> a, scalar_t<V> wr, scalar_t<V> wi) {
  return {a.re * wr - a.im * wi, a.re * wi + a.im * wr};
}
// Multiplication by a complex scalar's conjugate.
template <typename V> inline CVec<V> mul_conj_scalar(CVec<V> a, scalar_t<V> wr, scalar_t<V> wi) {
  return {a.re * wr + a.im * wi, a.im * wr - a.re * wi};
}
// a * (-i) and a * (+i).
template <typename V> inline CVec<V> mul_neg_i(CVec<V> a) { return {a.im, -a.re}; }
template <typename V> inline CVec<V> mul_pos_i(CVec<V> a) { return {-a.im, a.re}; }

// Unaligned vector load/store.
template <typename V> inline V load(const scalar_t<V>* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V> inline void store(scalar_t<V>* p, V v) { std::memcpy(p, &v, sizeof(V)); }

// In-register transpose of an L x L scalar block held in L vectors (r[i] is row i).
// With rows of interleaved complex numbers (one row per coil) this turns them into
// split (re, im) vectors across coils, and back.
inline void transpose(f32x8 (&r)[8]) {
  f32x8 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    r[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

template <typename V4> inline void transpose4(V4 (&r)[4]) {
  V4 t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5), t1 = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);
  V4 t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5), t3 = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);
  r[0] = __builtin_shufflevector(t0, t2, 0, 1, 4, 5);
  r[1] = __builtin_shufflevector(t0, t2, 2, 3, 6, 7);
  r[2] = __builtin_shufflevector(t1, t3, 0, 1, 4, 5);
  r[3] = __builtin_shufflevector(t1, t3, 2, 3, 6, 7);
}
inline void transpose(f32x4 (&r)[4]) { transpose4(r); }
inline void transpose(f64x4 (&r)[4]) { transpose4(r); }

inline void transpose(f64x2 (&r)[2]) {
  f64x2 a = __builtin_shufflevector(r[0], r[1], 0, 2), b = __builtin_shufflevector(r[0], r[1], 1, 3);
  r[0] = a;
  r[1] = b;
}

}  // namespace gleam::simd
