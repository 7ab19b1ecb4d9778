// Argument checks shared by the op kernels of every backend, and the translation of
// validated tensors into the framework-free SenseGeometry.
#pragma once

#include <ATen/ATen.h>

#include <complex>
#include <optional>
#include <string>
#include <utility>

#include "kernels/geometry.h"

namespace gleam::ops {

enum class DataKind { kImage, kKspace };

// Checks dtypes, devices, contiguity and shapes of the raw-op arguments; every message
// names the op, the argument, what it got and what was expected.
//   data: x (B, M, *S) for kImage, y (B, C, *S) for kKspace.
SenseGeometry check_and_describe(const char* op, const at::Tensor& data, DataKind kind, const at::Tensor& maps,
                                 const at::Tensor& mask, at::IntArrayRef fft_dims);

// A per-batch real parameter (step, lam): shape () or (B,), real dtype of `like`'s precision.
void check_batch_param(const char* op, const char* name, const at::Tensor& p, const at::Tensor& like, int64_t batch);

// A second image argument (ahy, x0) that must match x exactly.
void check_same_as(const char* op, const char* name, const at::Tensor& t, const char* ref_name, const at::Tensor& ref);

// All arguments of cg_solve (b like x, lam per batch, optional x0 like b, iters >= 0);
// returns the geometry and whether an x0 was given.
std::pair<SenseGeometry, bool> check_cg_solve(const at::Tensor& b, const at::Tensor& maps, const at::Tensor& mask,
                                              const at::Tensor& lam, const std::optional<at::Tensor>& x0,
                                              at::IntArrayRef fft_dims, int64_t iters);

// Arguments of the maps-gradient ops: x (B, M, *S) and either k-space y (B, C, *S)
// (`second_is_kspace`) or a second image g like x. Returns the geometry of x.
SenseGeometry check_maps_grad(const char* op, const at::Tensor& x, const at::Tensor& second, bool second_is_kspace,
                              const at::Tensor& maps, const at::Tensor& mask, at::IntArrayRef fft_dims);

// The unbroadcast maps gradient (B, C, M, *S) for x (B, M, *S); reduce_to_maps sums it to maps' shape.
at::Tensor full_maps_grad(const at::Tensor& x, const at::Tensor& maps);
at::Tensor reduce_to_maps(const at::Tensor& full, const at::Tensor& maps);

// Message pieces built without iostream number formatting: on some machines the
// extension's libstdc++ and torch's disagree on locale facets, and streaming an integer
// from inside the extension crashes (seen with torch 2.11 wheels and GCC 13).
std::string num(int64_t v);
std::string shape(at::IntArrayRef s);

template <typename T> std::complex<T>* cptr(const at::Tensor& t) {
  return reinterpret_cast<std::complex<T>*>(t.data_ptr());
}

}  // namespace gleam::ops
