#!/usr/bin/env bash
# Builds and checks everything that needs a GPU, then times the ops on it. Run from the
# repository root on a CUDA machine with torch installed:
#   bash benchmarks/gpu_checks.sh [OUTDIR]
# GoogleTest: an installed libgtest-dev, else a googletest source tree in .gtest-src/.
# Writes logs and the markdown benchmark table into OUTDIR (default: ./gpu-out).
set -uo pipefail
OUT_DIR="${1:-${OUT:-gpu-out}}"
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 GLEAM_CACHE_DIR="${GLEAM_CACHE_DIR:-/tmp/gleam-cache}" MAX_JOBS="${MAX_JOBS:-16}"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
status=0
step() { echo; echo "=== $* ==="; }

step "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

step "extension build (CPU + CUDA kernels)"
$PY -m gleam_core._build 2>&1 | tee "$OUT_DIR/build.log" | tail -15 || status=1

step "ctest (framework-free kernels, CUDA tests included)"
GT=()
[ -d .gtest-src ] && GT=(-DGLEAM_GTEST_SOURCE_DIR="$PWD/.gtest-src")
{ cmake -S . -B build-gpu -G Ninja -DGLEAM_BUILD_TESTS=ON "${GT[@]}" > "$OUT_DIR/cmake.log" 2>&1 \
  && cmake --build build-gpu -j"$MAX_JOBS" >> "$OUT_DIR/cmake.log" 2>&1 \
  && ctest --test-dir build-gpu --output-on-failure 2>&1 | tee "$OUT_DIR/ctest.log" | tail -8; } || { status=1; tail -30 "$OUT_DIR/cmake.log"; }
grep -c "Skipped" "$OUT_DIR/ctest.log" 2>/dev/null | sed 's/^/skipped tests: /'

step "pytest ${PYTEST_ARGS:-tests/python}"
$PY -m pytest ${PYTEST_ARGS:-tests/python} -q -x -p no:cacheprovider 2>&1 | tee "$OUT_DIR/pytest.log" | tail -25 || status=1

if [ "${SKIP_BENCH:-0}" != "1" ]; then
  step "ops benchmark on CUDA"
  $PY benchmarks/ops.py --device cuda --markdown "$OUT_DIR/ops_cuda.md" 2>&1 | tee "$OUT_DIR/bench.log" | tail -22 || status=1
  step "mixed precision benchmark on CUDA (bf16, fp16 against fp32)"
  $PY benchmarks/precision.py --device cuda --iterations 150 --out "$OUT_DIR/precision_cuda.md" 2>&1 \
    | tee "$OUT_DIR/precision.log" | tail -12 || status=1
fi
exit $status
