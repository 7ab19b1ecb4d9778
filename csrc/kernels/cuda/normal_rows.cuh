// Fused readout-decoupled normal operator on CUDA for masks that vary along the last
// axis only (fastMRI 1D masks, cine k-t masks): one thread block per image row runs, for
// every coil, gather (maps * x) -> FFT -> mask^2 -> inverse FFT -> conjugate combine in
// shared memory. The coil images never reach device memory: the op reads maps and x once
// and writes the output once, where the cuFFT path makes ten passes over a coil stack.
//
// The FFT is a mixed-radix Stockham transform computed one output element per thread and
// stage (radices 4, 2 and any odd prime; a table of the W roots of unity in shared memory),
// exact for any row length up to kMaxRow.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/geometry.h"

namespace gleam::cuda {

constexpr int64_t kMaxRow = 1024;

// True when normal_rows handles the geometry: only the last axis transformed, its length
// at most kMaxRow, and one or two map sets.
bool normal_rows_supported(const SenseGeometry& g);

// out = A^H A x (x/ahy/step null), or the DC step out = x - step_b (A^H A x - ahy).
template <typename T>
cudaError_t normal_rows(const SenseGeometry& g, const T* x, const T* maps, const T* mask, const T* ahy, const T* step,
                        int64_t step_stride, bool dc, T* out, cudaStream_t stream);

}  // namespace gleam::cuda
