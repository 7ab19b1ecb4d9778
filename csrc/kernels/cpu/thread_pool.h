// A small persistent thread pool for the CPU kernels.
//
// Why not at::parallel_for: with torch's OpenMP backend it is header-inline, so an
// extension compiled without -fopenmp silently runs it serially, and compiling with
// -fopenmp loads a second OpenMP runtime beside torch's, whose spinning threads then
// fight torch's own on small machines. This pool blocks its idle workers on a condition
// variable and takes its size from the caller (the torch glue passes at::get_num_threads()).
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
