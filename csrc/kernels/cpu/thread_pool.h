// A small persistent thread pool for the CPU kernels.
//
// Framework-free (ctest, and torch builds whose OpenMP runtime an extension cannot share).
// The torch glue prefers torch's own OpenMP team where it can join it (see
// ops/cpu/aten_executor.h): at::parallel_for is header-inline, so without -fopenmp it runs
// serially, and a second OpenMP runtime beside torch's would have its spinning threads fight
// torch's. This pool blocks its idle workers on a condition variable and takes its size from
// the caller.
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/cpu/pipeline.h"

namespace gleam::cpu {

// Splits [begin, end) into at most `threads` contiguous chunks of at least `grain` items and
// runs body on each, the calling thread included; returns when all are done. Calls made
// from inside a body run serially on the calling thread.
void pool_parallel_for(int64_t begin, int64_t end, int64_t grain, int threads,
                       const std::function<void(int64_t, int64_t)>& body);

// An Executor backed by the pool with the given number of threads.
Executor pool_executor(int threads);

}  // namespace gleam::cpu
