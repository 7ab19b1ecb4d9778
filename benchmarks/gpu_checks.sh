#!/usr/bin/env bash
# Everything that needs a GPU, as one prepared script for a short loan of a CUDA machine:
# builds the extension with CUDA, runs the CUDA ctest and pytest cases, then the GPU benchmarks,
# each step under its own time limit so that one slow step cannot eat the loan. Run from the
# repository root with a CUDA torch installed:
#   bash benchmarks/gpu_checks.sh [OUTDIR]            # both parts (~12 min on an H200)
#   PART=test  bash benchmarks/gpu_checks.sh OUTDIR   # build + tests only  (fits one 10-min call)
#   PART=bench bash benchmarks/gpu_checks.sh OUTDIR   # benchmarks only     (fits one 10-min call)
# GoogleTest: an installed libgtest-dev, else a googletest source tree in .gtest-src/.
# Writes logs and markdown tables into OUTDIR (default: $OUT, else ./gpu-out); exits non-zero
# when any step failed or ran out of time (named in the summary at the end).
set -uo pipefail
OUT_DIR="${1:-${OUT:-gpu-out}}"
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 GLEAM_CACHE_DIR="${GLEAM_CACHE_DIR:-/tmp/gleam-cache}" MAX_JOBS="${MAX_JOBS:-$(nproc)}"
PY="${PYTHON:-python3}"
PART="${PART:-all}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
failed=()
step() {  # step NAME SECONDS LOGFILE -- command...
  local name="$1" limit="$2" log="$OUT_DIR/$3"; shift 4
  echo; echo "=== $name (limit ${limit}s) ==="
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
  local rc=$?
  tail -n 25 "$log"
  echo "--- $name: rc=$rc in $((SECONDS - t0)) s"
  [ $rc -eq 0 ] || failed+=("$name (rc=$rc$([ $rc -eq 124 ] && echo ', timed out'))")
}

echo "=== machine ==="
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT_DIR/machine.txt"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
  | tee -a "$OUT_DIR/machine.txt"

if [ "$PART" = all ] || [ "$PART" = test ]; then
  step "extension build (CPU + CUDA kernels)" 420 build.log -- $PY -m gleam_core._build
  GT=()
  [ -d .gtest-src ] && GT=(-DGLEAM_GTEST_SOURCE_DIR="$PWD/.gtest-src")
  step "ctest (framework-free kernels, CUDA cases included)" 240 ctest.log -- bash -c \
    "cmake -S . -B build-gpu -G Ninja -DGLEAM_BUILD_TESTS=ON ${GT[*]} && cmake --build build-gpu -j$MAX_JOBS \
     && ctest --test-dir build-gpu --output-on-failure"
  # The CUDA cases of every test file (marked `cuda`), plus the ops and training tests that
  # pick the GPU when one is present.
  step "pytest (CUDA cases)" 300 pytest_cuda.log -- $PY -m pytest tests/python -q -p no:cacheprovider -m cuda
fi

if [ "$PART" = all ] || [ "$PART" = bench ]; then
  step "ops benchmark on CUDA" 150 ops.log -- $PY benchmarks/ops.py --device cuda --markdown "$OUT_DIR/ops_cuda.md"
  step "GLEAM lanes: sequential vs two streams/devices" 120 lanes.log -- \
    $PY benchmarks/lanes.py --steps 20 --rounds 3 --out "$OUT_DIR/lanes_cuda.md"
  step "planner estimate vs max_memory_allocated" 150 plan.log -- \
    $PY benchmarks/plan.py --device cuda --examples knee2d --budgets 24GiB,80GiB --cap 32 --check-device cuda \
    --out "$OUT_DIR/plan_cuda.md"
  step "strategies: memory and time rows on CUDA" 180 strategies.log -- \
    $PY benchmarks/strategies.py --device cuda --configs 2d --seeds 1 --iterations 50 --val-every 50 \
    --accuracy-rows pairs --out "$OUT_DIR/strategies_cuda.md"
  step "mixed precision on CUDA (bf16, fp16 against fp32)" 150 precision.log -- \
    $PY benchmarks/precision.py --device cuda --iterations 100 --out "$OUT_DIR/precision_cuda.md"
fi

echo
if [ ${#failed[@]} -eq 0 ]; then
  echo "gpu_checks: all steps passed"
  exit 0
fi
echo "gpu_checks: FAILED steps:"; printf '  %s\n' "${failed[@]}"
exit 1
