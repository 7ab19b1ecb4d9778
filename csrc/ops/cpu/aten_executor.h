// Runs the framework-free CPU kernels on ATen's intra-op thread pool.
#pragma once

#include <ATen/Parallel.h>

#include "kernels/cpu/pipeline.h"

namespace gleam::ops {

inline cpu::Executor aten_executor() {
  cpu::Executor e;
  e.threads = at::get_num_threads();
  e.pfor = [](int64_t b, int64_t en, int64_t grain, const std::function<void(int64_t, int64_t)>& f) {
    at::parallel_for(b, en, grain, f);
  };
  return e;
}

}  // namespace gleam::ops
