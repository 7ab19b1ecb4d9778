#include "python/bindings.h"

namespace gleam::python {

void bind_all(pybind11::module_& m) { bind_masks(m); }

}  // namespace gleam::python
