// Python bindings for the mask samplers in csrc/kernels/cpu/poisson_disc.h.
#include <pybind11/numpy.h>

#include <cstring>

#include "kernels/cpu/poisson_disc.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace gleam::python {

void bind_masks(py::module_& m) {
  m.def(
      "poisson_disc",
      [](int64_t ny, int64_t nx, double acceleration, int64_t calib_y, int64_t calib_x, uint64_t seed,
         bool crop_corner, double tol, int max_iters) {
        const masks::PoissonDiscOptions opt{ny, nx, acceleration, calib_y, calib_x, seed, crop_corner, tol, max_iters};
        masks::PoissonDiscResult res;
        {
          py::gil_scoped_release release;  // DataLoader workers may sample masks concurrently
          res = masks::poisson_disc(opt);
        }
        py::array_t<uint8_t> mask({ny, nx});
        std::memcpy(mask.mutable_data(), res.mask.data(), res.mask.size());
        py::dict out;
        out["mask"] = mask;
        out["samples"] = res.samples;
        out["acceleration"] = res.acceleration;
        out["slope"] = res.slope;
        out["iterations"] = res.iterations;
        out["adjusted"] = res.adjusted;
        return out;
      },
      py::arg("ny"), py::arg("nx"), py::arg("acceleration"), py::arg("calib_y"), py::arg("calib_x"), py::arg("seed"),
      py::arg("crop_corner"), py::arg("tol"), py::arg("max_iters"),
      "Variable-density Poisson-disc mask (see csrc/kernels/cpu/poisson_disc.h); returns a dict with the (ny, nx) "
      "uint8 mask and statistics. Raises ValueError for unreachable or invalid parameters.");
}

}  // namespace gleam::python
