#include "kernels/cpu/poisson_disc.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

namespace gleam::masks {

namespace {

using u128 = unsigned __int128;

constexpr int64_t kMaxSide = 8192;   // keeps the exact crop test inside int64
constexpr int64_t kQuant = 16;       // radii are quantized to 1/16 pixel
constexpr double kMaxSlope = 1e12;   // bracketing stops here; the completion step takes over

uint64_t isqrt(u128 v) {  // floor(sqrt(v)), exact
  if (v == 0) return 0;
  auto r = static_cast<uint64_t>(std::sqrt(static_cast<double>(v)));
  while (static_cast<u128>(r) * r > v) --r;
  while (static_cast<u128>(r + 1) * (r + 1) <= v) ++r;
  return r;
}

// Per-grid data shared by every pass of the bisection.
struct Grid {
  int64_t ny, nx, n;
  int64_t cy0, cy1, cx0, cx1, calib_count = 0;
  double sx, sy, cap;
  std::vector<double> r;         // normalized distance from the calibration box, per pixel
  std::vector<int64_t> order;    // candidate pixels in visiting order
};

Grid make_grid(const PoissonDiscOptions& o) {
  Grid g;
  g.ny = o.ny;
  g.nx = o.nx;
  g.n = o.ny * o.nx;
  g.cy0 = (o.ny - o.calib_y) / 2;
  g.cy1 = (o.ny + o.calib_y) / 2;
  g.cx0 = (o.nx - o.calib_x) / 2;
  g.cx1 = (o.nx + o.calib_x) / 2;
  const double nmax = static_cast<double>(std::max(o.ny, o.nx));
  g.sx = static_cast<double>(o.nx) / nmax;
  g.sy = static_cast<double>(o.ny) / nmax;
  g.cap = 4.0 * static_cast<double>(o.ny + o.nx);
  auto dist = [](int64_t i, int64_t n, int64_t c) { return std::max<int64_t>(std::llabs(2 * i - n) - c, 0); };
  const int64_t ax_max = std::max<int64_t>(dist(0, o.nx, o.calib_x), 1);
  const int64_t ay_max = std::max<int64_t>(dist(0, o.ny, o.calib_y), 1);
  const int64_t den = ax_max * ax_max * ay_max * ay_max;
  g.r.resize(g.n);
  std::vector<std::pair<uint64_t, int64_t>> keyed;
  keyed.reserve(g.n);
  const uint64_t base = mix64(o.seed);
  for (int64_t iy = 0; iy < o.ny; ++iy) {
    const int64_t ay = dist(iy, o.ny, o.calib_y);
    for (int64_t ix = 0; ix < o.nx; ++ix) {
      const int64_t ax = dist(ix, o.nx, o.calib_x);
      const int64_t idx = iy * o.nx + ix;
      const int64_t num = ax * ax * ay_max * ay_max + ay * ay * ax_max * ax_max;
      g.r[idx] = std::sqrt(static_cast<double>(num) / static_cast<double>(den));
      const bool calib = iy >= g.cy0 && iy < g.cy1 && ix >= g.cx0 && ix < g.cx1;
      if (calib) {
        ++g.calib_count;
      } else if (!o.crop_corner || num < den) {
        keyed.emplace_back(mix64(base + static_cast<uint64_t>(idx)), idx);
      }
    }
  }
  std::sort(keyed.begin(), keyed.end());
  g.order.reserve(keyed.size());
  for (const auto& k : keyed) g.order.push_back(k.second);
  return g;
}

// Quantized exclusion radii (16 * r_x, 16 * r_y) of pixel idx at slope s.
std::pair<int64_t, int64_t> radii(const Grid& g, double s, int64_t idx) {
  // volatile: keeps 1 + s*r from being fused into an FMA, so the Python mirror rounds alike.
  volatile double sr = s * g.r[idx];
  const double grow = 1.0 + sr;
  const double rx = std::min(std::max(1.0, grow * g.sx), g.cap);
  const double ry = std::min(std::max(1.0, grow * g.sy), g.cap);
  return {static_cast<int64_t>(std::floor(rx * kQuant + 0.5)), static_cast<int64_t>(std::floor(ry * kQuant + 0.5))};
}

// Marks every pixel q with |dx|^2 / r_x^2 + |dy|^2 / r_y^2 < 1 around idx as excluded.
void block(const Grid& g, int64_t idx, int64_t qx, int64_t qy, std::vector<uint8_t>& blocked) {
  const int64_t iy0 = idx / g.nx, ix0 = idx % g.nx;
  const int64_t dy_max = (qy - 1) / kQuant;
  const int64_t dy_lo = std::max(-dy_max, -iy0), dy_hi = std::min(dy_max, g.ny - 1 - iy0);
  for (int64_t dy = dy_lo; dy <= dy_hi; ++dy) {
    const int64_t rem = qy * qy - kQuant * kQuant * dy * dy;  // > 0 inside the row range
    const u128 v = static_cast<u128>(static_cast<uint64_t>(qx * qx)) * static_cast<uint64_t>(rem);
    const auto dx_max = static_cast<int64_t>(isqrt(v - 1) / static_cast<uint64_t>(kQuant * qy));
    const int64_t x0 = std::max<int64_t>(ix0 - dx_max, 0), x1 = std::min<int64_t>(ix0 + dx_max, g.nx - 1);
    std::fill(blocked.begin() + (iy0 + dy) * g.nx + x0, blocked.begin() + (iy0 + dy) * g.nx + x1 + 1, uint8_t{1});
  }
}

void fill_calib(const Grid& g, std::vector<uint8_t>& mask) {
  for (int64_t iy = g.cy0; iy < g.cy1; ++iy)
    std::fill(mask.begin() + iy * g.nx + g.cx0, mask.begin() + iy * g.nx + g.cx1, uint8_t{1});
}

// One random-sequential-adsorption pass at slope s; returns the number of samples.
int64_t rsa(const Grid& g, double s, std::vector<uint8_t>& mask, std::vector<uint8_t>& blocked) {
  std::fill(mask.begin(), mask.end(), uint8_t{0});
  std::fill(blocked.begin(), blocked.end(), uint8_t{0});
  fill_calib(g, mask);
  int64_t count = g.calib_count;
  for (int64_t idx : g.order) {
    if (blocked[idx]) continue;
    mask[idx] = 1;
    ++count;
    const auto [qx, qy] = radii(g, s, idx);
    block(g, idx, qx, qy, blocked);
  }
  return count;
}

// Brings `mask` (count samples, made at slope s) to exactly `target` samples.
void complete(const Grid& g, double s, int64_t count, int64_t target, std::vector<uint8_t>& mask) {
  if (count > target) {
    int64_t extra = count - target;
    for (auto it = g.order.rbegin(); it != g.order.rend() && extra > 0; ++it) {
      if (mask[*it]) {
        mask[*it] = 0;
        --extra;
      }
    }
    return;
  }
  std::vector<std::pair<int64_t, int64_t>> free;  // (density rank, visiting position)
  for (int64_t pos = 0; pos < static_cast<int64_t>(g.order.size()); ++pos) {
    if (!mask[g.order[pos]]) {
      const auto [qx, qy] = radii(g, s, g.order[pos]);
      free.emplace_back(qx * qy, pos);
    }
  }
  std::sort(free.begin(), free.end());
  for (int64_t k = 0; k < target - count; ++k) mask[g.order[free[k].second]] = 1;
}

void check(bool ok, const std::string& message) {
  if (!ok) throw std::invalid_argument("poisson_disc: " + message);
}

}  // namespace

uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

PoissonDiscResult poisson_disc(const PoissonDiscOptions& o) {
  check(o.ny >= 1 && o.nx >= 1 && o.ny <= kMaxSide && o.nx <= kMaxSide,
        "shape must be within [1, 8192] per axis, got (" + std::to_string(o.ny) + ", " + std::to_string(o.nx) + ")");
  check(o.calib_y >= 0 && o.calib_x >= 0 && o.calib_y <= o.ny && o.calib_x <= o.nx,
        "calib (" + std::to_string(o.calib_y) + ", " + std::to_string(o.calib_x) + ") must lie within the shape (" +
            std::to_string(o.ny) + ", " + std::to_string(o.nx) + ")");
  check(std::isfinite(o.acceleration) && o.acceleration >= 1.0,
        "acceleration must be a finite number >= 1, got " + std::to_string(o.acceleration));
  check(o.tol > 0.0 && o.tol < 1.0, "tol must be in (0, 1), got " + std::to_string(o.tol));
  check(o.max_iters >= 1, "max_iters must be >= 1, got " + std::to_string(o.max_iters));

  const Grid g = make_grid(o);
  const double n = static_cast<double>(g.n);
  const int64_t target = static_cast<int64_t>(std::floor(n / o.acceleration + 0.5));
  const int64_t most = g.calib_count + static_cast<int64_t>(g.order.size());
  const int64_t least = std::max<int64_t>(g.calib_count, 1);
  check(target <= most && target >= least,
        "acceleration " + std::to_string(o.acceleration) + " cannot be reached on a (" + std::to_string(o.ny) + ", " +
            std::to_string(o.nx) + ") grid with a " + std::to_string(o.calib_y) + "x" + std::to_string(o.calib_x) +
            " calibration box" + (o.crop_corner ? " and cropped corners" : "") + ": reachable range is [" +
            std::to_string(n / static_cast<double>(most)) + ", " + std::to_string(n / static_cast<double>(least)) +
            "]");
  const auto lo_count = static_cast<int64_t>(std::ceil(n / (o.acceleration * (1.0 + o.tol))));
  const auto hi_count = static_cast<int64_t>(std::floor(n / (o.acceleration * (1.0 - o.tol))));
  // Bisection goes on until the count is within tol/8 of the target (then the mask is as
  // close as counts allow); the tol window only decides whether the completion step runs.
  const auto fine = static_cast<int64_t>(std::floor(static_cast<double>(target) * o.tol / 8.0));

  PoissonDiscResult res;
  std::vector<uint8_t> mask(g.n), blocked(g.n), best_mask;
  int64_t best_count = -1;
  double best_slope = 0.0;
  auto run = [&](double s) {
    const int64_t c = rsa(g, s, mask, blocked);
    ++res.iterations;
    if (best_count < 0 || std::llabs(c - target) < std::llabs(best_count - target)) {
      best_count = c;
      best_slope = s;
      best_mask = mask;
    }
    return c;
  };
  auto done = [&]() { return std::llabs(best_count - target) <= fine || res.iterations >= o.max_iters; };

  double s_lo = 0.0, s_hi = static_cast<double>(std::max(o.ny, o.nx));
  int64_t count = run(s_hi);
  // Bracket: widen the slope while even s_hi leaves too many samples.
  while (!done() && count > target && s_hi < kMaxSlope) {
    s_lo = s_hi;
    s_hi *= 2.0;
    count = run(s_hi);
  }
  while (!done() && s_hi - s_lo > 1e-12 * s_hi) {
    const double slope = 0.5 * (s_lo + s_hi);
    count = run(slope);
    if (count > target) {
      s_lo = slope;
    } else {
      s_hi = slope;
    }
  }
  count = best_count;
  if (count < lo_count || count > hi_count) {
    complete(g, best_slope, best_count, target, best_mask);
    res.adjusted = target - best_count;
    count = target;
  }
  res.mask = std::move(best_mask);
  res.slope = best_slope;
  res.samples = count;
  res.acceleration = n / static_cast<double>(count);
  return res;
}

}  // namespace gleam::masks
