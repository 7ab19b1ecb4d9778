#!/usr/bin/env bash
# The whole test suite: pytest (ops against the pure-PyTorch reference, data, models,
# training) and ctest (framework-free C++/CUDA kernels with GoogleTest). Run from anywhere
# with the package and its test extras installed (pip install ".[test]"). ctest needs cmake,
# ninja, GoogleTest (Debian: libgtest-dev) and, for gleam-infer, the HDF5 C library
# (libhdf5-dev): installed here with apt-get when this runs as root or with passwordless sudo;
# otherwise it stops before pytest with the command to run.
# CUDA tests run when a GPU is present. (CI also runs tests/cuda_compile.sh where nvcc exists.)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
JOBS="$(nproc 2>/dev/null || echo 2)"

have_gtest() {
  [ -f /usr/include/gtest/gtest.h ] || [ -f /usr/local/include/gtest/gtest.h ] \
    || [ -f "${GLEAM_GTEST_SOURCE_DIR:-/usr/src/googletest}/CMakeLists.txt" ]
}
have_hdf5() {
  [ -f /usr/include/hdf5/serial/hdf5.h ] || [ -f /usr/include/hdf5.h ] || [ -f /usr/local/include/hdf5.h ]
}
SYS_PKGS="cmake ninja-build libgtest-dev libhdf5-dev"
if ! command -v cmake >/dev/null || ! have_gtest || ! have_hdf5; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$SUDO" ] || sudo -n true 2>/dev/null; }; then
    echo "tests/run.sh: installing $SYS_PKGS for the C++ tests"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $SYS_PKGS >/dev/null
  else
    echo "tests/run.sh: the C++ tests need cmake and GoogleTest, which are missing. Install them with:" >&2
    echo "  sudo apt-get install -y $SYS_PKGS" >&2
    exit 1
  fi
fi

# Compile the extension once up front, so no test times a build and a build error is
# reported as one clear failure (the tests would otherwise run on the reference ops).
"$PY" -m gleam_core._build
"$PY" -m pytest tests/python -q -p no:cacheprovider "$@"

GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# GLEAM_BUILD_INFER: libgleam_ops and gleam-infer against this Python's torch, with their tests.
cmake -S . -B build/ctest "${GEN[@]}" -DGLEAM_BUILD_TESTS=ON -DGLEAM_BUILD_INFER=ON \
  -DGLEAM_PYTHON="$(command -v "$PY")" >/dev/null
cmake --build build/ctest -j"$JOBS"
ctest --test-dir build/ctest --output-on-failure
