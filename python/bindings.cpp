// The Python module gleam_core._C: loading it registers the gleam:: ops (their
// TORCH_LIBRARY blocks live in the same shared object); it also exposes C++ that is not
// an op: build information, and helpers bound by other modules' bind_* functions.
#include <torch/extension.h>

#include "python/bindings.h"

namespace {

pybind11::dict build_info() {
  pybind11::dict d;
  d["torch_version"] = TORCH_VERSION;
#ifdef GLEAM_WITH_CUDA
  d["cuda"] = true;
#else
  d["cuda"] = false;
#endif
#if defined(__AVX512F__)
  d["cpu_simd"] = "avx512";
#elif defined(__AVX2__)
  d["cpu_simd"] = "avx2";
#elif defined(__SSE2__)
  d["cpu_simd"] = "sse2";
#else
  d["cpu_simd"] = "generic";
#endif
#ifdef GLEAM_ATEN_OPENMP
  d["cpu_threads"] = "torch's OpenMP team";
#else
  d["cpu_threads"] = "own pool";
#endif
  d["compiler"] = __VERSION__;
  return d;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "gleam_core compiled extension: registers the gleam:: ops";
  m.def("build_info", &build_info, "Compile-time configuration of the extension");
  gleam::python::bind_all(m);
}
