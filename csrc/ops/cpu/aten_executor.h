// Runs the framework-free CPU kernels with as many threads as torch's intra-op setting
// (torch.set_num_threads), on the kernels' own pool (see kernels/cpu/thread_pool.h).
#pragma once

#include <ATen/Parallel.h>

#include "kernels/cpu/thread_pool.h"

namespace gleam::ops {

inline cpu::Executor aten_executor() {
  // Inside an ATen parallel region (e.g. a DataLoader-style caller), stay serial.
  return cpu::pool_executor(at::in_parallel_region() ? 1 : at::get_num_threads());
}

}  // namespace gleam::ops
