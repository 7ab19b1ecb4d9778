// Each non-op C++ feature exposed to Python adds one bind_* function here and a call in
// bind_all (python/bind_all.cpp), keeping bindings.cpp itself stable.
#pragma once

#include <pybind11/pybind11.h>

namespace gleam::python {

void bind_all(pybind11::module_& m);
void bind_masks(pybind11::module_& m);

}  // namespace gleam::python
