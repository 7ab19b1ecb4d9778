#!/usr/bin/env bash
# CUDA compile check that needs no GPU: builds the whole extension (C++ and every CUDA source,
# csrc/ops/cuda included) against the current CUDA build of torch, through the same code path
# as a user's first `import gleam_core.ops`, then loads it and checks it reports CUDA kernels.
#
# The CUDA torch lives in a throwaway virtual environment in a cache folder, installed with
# --no-deps plus torch's small pure-Python dependencies: the headers are in the torch wheel;
# nvcc, the CUDA headers and libcudart come from the machine's CUDA toolkit. None of the
# NVIDIA runtime wheels (gigabytes) are installed. The venv and the build are cached between
# runs (keyed by the torch version and the sources), so an unchanged tree rechecks in seconds.
#
#   bash tests/cuda_compile.sh            # torch version: GLEAM_CUDA_TORCH (default: newest on PyPI)
# Environment: GLEAM_CI_CACHE (cache root, default ~/.cache/gleam_ci), TORCH_CUDA_ARCH_LIST
# (default 9.0, Hopper), MAX_JOBS (default: all cores). Exits non-zero on any compile, link or
# load error, printing the compiler's first error.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null; then
  echo "cuda_compile: nvcc not found; nothing to check" >&2
  exit 0
fi
CACHE="${GLEAM_CI_CACHE:-$HOME/.cache/gleam_ci}"
TORCH_SPEC="torch${GLEAM_CUDA_TORCH:+==$GLEAM_CUDA_TORCH}"
VENV="$CACHE/cuda-torch-venv"
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
start=$(date +%s)

mkdir -p "$CACHE"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
fi
# The wheel for this platform from PyPI is the CUDA build; --no-deps keeps the NVIDIA wheels out.
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null \
   || { [ -n "${GLEAM_CUDA_TORCH:-}" ] && [ "$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')" != "$GLEAM_CUDA_TORCH" ]; }; then
  "$PY" -m pip install -q --no-deps "$TORCH_SPEC"
fi
"$PY" -m pip install -q typing_extensions sympy networkx jinja2 fsspec filelock numpy ninja setuptools
# Without the NVIDIA wheels torch's CUDA libraries miss cuDNN, NCCL, cuBLAS, ... and the driver:
# stand-ins with their sonames let torch import and the extension load (no CUDA call is made).
TORCH_LIB="$("$PY" -c 'import importlib.util, os; print(os.path.join(os.path.dirname(importlib.util.find_spec("torch").origin), "lib"))')"
STUBS="$CACHE/cuda-stub-libs"
# nvcc may be a wrapper script outside the toolkit (e.g. /usr/local/bin/nvcc): ask it where it lives.
if [ -z "${CUDA_HOME:-}" ]; then
  CUDA_HOME="$(nvcc -dryrun -x cu -c /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)"
  CUDA_HOME="$(readlink -f "${CUDA_HOME:-/usr/local/cuda}")"
fi
export CUDA_HOME
export LD_LIBRARY_PATH="$STUBS:$CUDA_HOME/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
python3 tests/cuda_stub_libs.py "$TORCH_LIB" "$STUBS"
"$PY" - <<'EOF'
import torch
print(f"cuda_compile: torch {torch.__version__} (CUDA {torch.version.cuda}) in the check venv")
assert torch.version.cuda, "the check venv holds a CPU build of torch; delete it and rerun"
EOF

export GLEAM_WITH_CUDA=1 GLEAM_NATIVE=0 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export GLEAM_CACHE_DIR="$CACHE/cuda-build" MAX_JOBS="${MAX_JOBS:-$(nproc)}"
# Run from the repository (not an installed copy), exactly the first-import build.
export PYTHONPATH="$PWD"
log="$CACHE/cuda-build.log"
if ! "$PY" -m gleam_core._build --verbose >"$log" 2>&1; then
  echo "cuda_compile: FAILED (full log: $log)" >&2
  grep -A1 "the build FAILED" "$log" >&2 || tail -20 "$log" >&2
  grep -E "error|cannot find|undefined reference" "$log" | grep -v "^\[" | head -20 >&2
  exit 1
fi
"$PY" - <<'EOF'
import gleam_core._build as b
info = b.build().build_info()
print("cuda_compile: build_info", info)
assert info.get("cuda") in (True, "True", "1", 1), f"the build has no CUDA kernels: {info}"
EOF
echo "cuda_compile: OK in $(( $(date +%s) - start )) s"
