// Variable-density Poisson-disc sampling masks for 2D phase-encode planes (ky-kz of 3D
// Cartesian scans), framework-free.
//
// The sampler (the Python fallback in gleam_core/data/masks.py mirrors it bit for bit):
//  * Grid (ny, nx), row-major. A centered calibration box of calib_y x calib_x pixels, rows
//    [(ny - calib_y) / 2, (ny + calib_y) / 2), is always sampled.
//  * Each pixel has a normalized distance from the box, r = sqrt(x^2 + y^2) with
//    x = max(|2 ix - nx| - calib_x, 0) / max_ix(...) (same for y). With crop_corner, pixels
//    with r >= 1 (outside the inscribed ellipse) are never sampled.
//  * For a density slope s, a point at r excludes the ellipse of radii
//    r_x = max(1, (1 + s r) nx / max(nx, ny)) (likewise r_y), quantized to 1/16 pixel; the
//    exclusion test is done in exact integer arithmetic.
//  * Random sequential adsorption: candidates are visited in the order of a counter-based
//    hash of (seed, pixel index); a candidate is accepted when no accepted point excludes it.
//    The order is the same for every s, so the sample count falls almost monotonically as s
//    grows and a bisection on s finds the requested acceleration.
//  * Bisection on s until N / samples is within `tol` of the request. If it has not got
//    there after max_iters steps (tiny grids, where counts jump), the closest mask is
//    completed to exactly round(N / acceleration) samples: extra points are removed in
//    reverse visiting order, missing ones added in order of decreasing local density. So any
//    reachable acceleration succeeds; an unreachable one is rejected up front.
#pragma once

#include <cstdint>
#include <vector>

namespace gleam::masks {

struct PoissonDiscOptions {
  int64_t ny = 0, nx = 0;       // grid size (phase-encode axes), each in [1, 8192]
  double acceleration = 1.0;    // requested N / samples, >= 1
  int64_t calib_y = 0, calib_x = 0;  // calibration box, 0 <= calib <= n
  uint64_t seed = 0;
  bool crop_corner = true;      // no samples outside the inscribed ellipse
  double tol = 0.05;            // relative tolerance on the acceleration, in (0, 1)
  int max_iters = 64;           // bisection steps before the exact completion
};

struct PoissonDiscResult {
  std::vector<uint8_t> mask;    // (ny, nx) row-major, 0/1
  int64_t samples = 0;
  double acceleration = 0.0;    // achieved N / samples
  double slope = 0.0;           // density slope s of the returned mask
  int iterations = 0;           // RSA passes run (bisection and bracketing)
  int64_t adjusted = 0;         // samples added (> 0) or removed (< 0) by the completion step
};

// Throws std::invalid_argument (naming the parameter) for bad sizes, tolerances, or an
// acceleration outside the reachable range [N / (calib + candidates), N / max(calib, 1)].
PoissonDiscResult poisson_disc(const PoissonDiscOptions& opt);

// splitmix64 finalizer: the hash that orders candidates (key of pixel i: mix64(mix64(seed) + i)).
uint64_t mix64(uint64_t z);

}  // namespace gleam::masks
