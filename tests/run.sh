#!/usr/bin/env bash
# The whole test suite: pytest (ops against the pure-PyTorch reference, data, models,
# training) and ctest (framework-free C++/CUDA kernels with GoogleTest). Run from anywhere
# with the package and its test extras installed (pip install ".[test]"); ctest needs
# cmake and GoogleTest (Debian: libgtest-dev). CUDA tests run when a GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
JOBS="$(nproc 2>/dev/null || echo 2)"

# Compile the extension once up front, so no test times a build and a build error is
# reported as one clear failure (the tests would otherwise run on the reference ops).
"$PY" -m gleam_core._build
"$PY" -m pytest tests/python -q -p no:cacheprovider "$@"

GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
cmake -S . -B build/ctest "${GEN[@]}" -DGLEAM_BUILD_TESTS=ON >/dev/null
cmake --build build/ctest -j"$JOBS"
ctest --test-dir build/ctest --output-on-failure
