// Runs the framework-free CPU kernels with as many threads as torch's intra-op setting
// (torch.set_num_threads).
//
// GLEAM_ATEN_OPENMP (set by the build when the extension, compiled with -fopenmp, shares
// torch's OpenMP runtime): parallel regions run on torch's own thread team through
// at::parallel_for, so they start on threads that are still spinning from the previous
// torch op instead of competing with them for the cores. Otherwise: the kernels' own pool
// (kernels/cpu/thread_pool.h).
#pragma once

#include <ATen/Parallel.h>

#include "kernels/cpu/thread_pool.h"

namespace gleam::ops {

inline cpu::Executor aten_executor() {
  // Inside an ATen parallel region (e.g. a DataLoader-style caller), stay serial.
  const int threads = at::in_parallel_region() ? 1 : at::get_num_threads();
#ifdef GLEAM_ATEN_OPENMP
  cpu::Executor e;
  e.threads = threads;
  e.pfor = [](int64_t b, int64_t en, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
    at::parallel_for(b, en, grain, f);
  };
  return e;
#else
  return cpu::pool_executor(threads);
#endif
}

}  // namespace gleam::ops
