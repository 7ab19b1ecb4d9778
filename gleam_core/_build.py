"""Builds and loads the compiled extension ``gleam_core._C``.

When and where the build happens
--------------------------------
``pip install .`` installs Python files and a copy of the C++/CUDA sources; it compiles
nothing, so it never fights pip's build isolation or binds the extension to a torch other
than the one that runs it. The first ``import gleam_core.ops`` (or ``gleam-build``)
compiles the sources with torch's ``cpp_extension`` and ninja into a cache directory keyed
by a hash of the sources, the torch and CUDA versions, the Python version, the compile
flags and the CPU's instruction set. Later imports load the cached library directly.
About two minutes on a 2-core CPU, more with CUDA kernels.

Environment
-----------
``GLEAM_CACHE_DIR``       cache root (default ``~/.cache/gleam_core``)
``GLEAM_NO_EXT=1``        do not build or load; use the pure-PyTorch reference ops
``GLEAM_FORCE_REBUILD=1`` rebuild even when a cached build exists (or ``gleam-build --force``)
``GLEAM_BUILD_VERBOSE=1`` show the compiler's output
``GLEAM_NATIVE=0``        compile for generic x86-64 instead of ``-march=native``
``GLEAM_WITH_CUDA=0|1``   CUDA kernels off/on (default: on when torch has CUDA and nvcc exists)
``TORCH_CUDA_ARCH_LIST``  GPU architectures (default: those of the visible GPUs only)
``MAX_JOBS``              parallel compile jobs

Concurrent imports wait on an ``fcntl`` lock, which the OS releases when its holder dies,
so an interrupted build can never leave a lock that hangs later runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import sys
import time
import types
import warnings
from pathlib import Path

import torch

_PKG_DIR = Path(__file__).resolve().parent
_MODULE_ALIAS = "gleam_core._C"
_loaded: types.ModuleType | None = None
_load_error: str | None = None
_attempted = False


def source_root() -> Path:
    """Directory holding ``csrc/`` and ``python/``: the package copy, or the repository."""
    packaged = _PKG_DIR / "_src"
    if (packaged / "csrc").is_dir():
        return packaged
    return _PKG_DIR.parent


def cache_root() -> Path:
    return Path(os.environ.get("GLEAM_CACHE_DIR", Path.home() / ".cache" / "gleam_core")).expanduser()


def _truthy(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


def _want_cuda() -> bool:
    env = os.environ.get("GLEAM_WITH_CUDA")
    if env is not None:
        return _truthy("GLEAM_WITH_CUDA")
    if torch.version.cuda is None:
        return False
    from torch.utils.cpp_extension import CUDA_HOME

    return CUDA_HOME is not None and shutil.which("nvcc", path=os.path.join(CUDA_HOME, "bin")) is not None


def _sources(root: Path, with_cuda: bool) -> list[Path]:
    files = sorted((root / "csrc").rglob("*.cpp")) + sorted((root / "python").glob("*.cpp"))
    files = [f for f in files if "cuda" not in f.relative_to(root).parts]
    if with_cuda:
        files += sorted((root / "csrc").rglob("*.cu"))
    return [f for f in files if _in_extension(root, f)]


def _in_extension(root: Path, path: Path) -> bool:
    """csrc/infer is the CMake-built gleam-infer tool (HDF5, libtorch), not part of the extension."""
    return path.relative_to(root).parts[:2] != ("csrc", "infer")


def _cpu_signature() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return platform.machine() + ":" + hashlib.sha256(flags.encode()).hexdigest()[:16]


def _cuda_arch_signature() -> str:
    arch = os.environ.get("TORCH_CUDA_ARCH_LIST")
    if arch:
        return arch
    if torch.cuda.is_available():
        caps = {torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())}
        return ";".join(f"{a}.{b}" for a, b in sorted(caps))
    return "none"


def _shares_torch_openmp() -> bool:
    """True when an extension compiled with -fopenmp joins torch's own OpenMP runtime: torch is
    built with OpenMP and loads it under the plain soname ``libgomp.so.1`` (bundled or from
    the system), which the loader then reuses. Wheels that bundle a renamed copy
    (``libgomp-<hash>.so.1``) would get a second runtime, whose spinning threads fight torch's,
    so there the kernels keep their own thread pool. GLEAM_CPU_POOL=own forces the pool."""
    if os.environ.get("GLEAM_CPU_POOL", "").lower() == "own" or platform.system() != "Linux":
        return False
    if "OpenMP" not in torch.__config__.parallel_info():
        return False
    lib = Path(torch.__file__).parent / "lib"
    bundled = [p.name for p in lib.glob("libgomp*")] + [p.name for p in lib.parent.parent.glob("torch.libs/libgomp*")]
    return all(name == "libgomp.so.1" for name in bundled)


def cxx_standard(torch_version: str) -> str:
    """The C++ standard for host and nvcc compiles that the given torch's headers need.

    torch 2.14 moved its headers to C++20 (ATen.h stops with "C++20 or later compatible
    compiler is required"); older releases need C++17, which every nvcc they support accepts.
    """
    release = torch_version.split("+")[0].split(".")
    try:
        major, minor = int(release[0]), int("".join(ch for ch in release[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError) as exc:
        raise ValueError(f"torch version {torch_version!r}: expected MAJOR.MINOR[.PATCH][+LOCAL]") from exc
    return "c++20" if (major, minor) >= (2, 14) else "c++17"


def build_config() -> dict:
    """Everything the compiled library depends on (its hash names the cache entry)."""
    root = source_root()
    with_cuda = _want_cuda()
    native = _truthy("GLEAM_NATIVE", "1") and platform.machine() in ("x86_64", "AMD64")
    cflags = ["-O3", "-ffp-contract=fast", "-fno-math-errno", "-Wno-psabi"]
    cflags += ["-march=native"] if native else []
    ldflags = []
    if _shares_torch_openmp():  # parallel regions on torch's own OpenMP team (see aten_executor.h)
        cflags += ["-fopenmp", "-DGLEAM_ATEN_OPENMP"]
        ldflags.append("-fopenmp")
    # Host C++ takes torch's own -std; nvcc gets the standard its headers need.
    cuda_flags = ["-O3", f"-std={cxx_standard(torch.__version__)}"]
    if with_cuda:
        cflags.append("-DGLEAM_WITH_CUDA")
        cuda_flags.append("-DGLEAM_WITH_CUDA")
    srcs = _sources(root, with_cuda)
    h = hashlib.sha256()
    headers = [p for p in list((root / "csrc").rglob("*.h")) + list((root / "csrc").rglob("*.cuh"))
               if _in_extension(root, p)]
    for path in sorted(srcs + headers + list((root / "python").glob("*.h"))):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    for part in (torch.__version__, str(torch.version.cuda), sys.version, " ".join(cflags), " ".join(cuda_flags),
                 _cpu_signature() if native else "generic", _cuda_arch_signature() if with_cuda else "cpu"):
        h.update(part.encode())
    key = h.hexdigest()[:16]
    return {
        "root": root,
        "sources": srcs,
        "with_cuda": with_cuda,
        "cflags": cflags,
        "ldflags": ldflags,
        "cuda_flags": cuda_flags,
        "include": [str(root / "csrc"), str(root)],
        "key": key,
        "name": f"gleam_core_C_{key}",
        "build_dir": cache_root() / key,
    }


def _import_built(name: str, build_dir: Path) -> types.ModuleType | None:
    libs = sorted(build_dir.glob(f"{name}*.so")) + sorted(build_dir.glob(f"{name}*.pyd"))
    if not libs or not (build_dir / "BUILD_OK").exists():
        return None
    spec = importlib.util.spec_from_file_location(
        name, libs[0], loader=importlib.machinery.ExtensionFileLoader(name, str(libs[0])))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(force: bool = False, verbose: bool | None = None) -> types.ModuleType:
    """Compiles (if needed) and imports the extension; raises on failure."""
    from torch.utils import cpp_extension

    cfg = build_config()
    build_dir: Path = cfg["build_dir"]
    build_dir.mkdir(parents=True, exist_ok=True)
    verbose = _truthy("GLEAM_BUILD_VERBOSE") if verbose is None else verbose
    force = force or _truthy("GLEAM_FORCE_REBUILD")
    with open(build_dir / "gleam.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released by the OS if this process dies
        if not force:
            module = _import_built(cfg["name"], build_dir)
            if module is not None:
                return module
        (build_dir / "BUILD_OK").unlink(missing_ok=True)
        # We hold the only real lock; any file lock torch's FileBaton left here is stale.
        (build_dir / "lock").unlink(missing_ok=True)
        if force:
            for stale in build_dir.glob("*.o"):
                stale.unlink()
        start = time.time()
        print(f"gleam_core: compiling the C++{'/CUDA' if cfg['with_cuda'] else ''} ops into {build_dir} "
              "(first use only; a few minutes)...", file=sys.stderr, flush=True)
        module = cpp_extension.load(
            name=cfg["name"],
            sources=[str(s) for s in cfg["sources"]],
            extra_cflags=cfg["cflags"],
            extra_cuda_cflags=cfg["cuda_flags"],
            extra_ldflags=cfg["ldflags"],
            extra_include_paths=cfg["include"],
            build_directory=str(build_dir),
            with_cuda=cfg["with_cuda"],
            verbose=verbose,
        )
        (build_dir / "BUILD_OK").write_text(f"{time.time() - start:.1f} s\n")
        print(f"gleam_core: build finished in {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        return module


def load_extension() -> types.ModuleType | None:
    """Returns the extension module, building it on first use; None (with one warning) when unusable."""
    global _loaded, _load_error, _attempted
    if _attempted:
        return _loaded
    _attempted = True
    if _truthy("GLEAM_NO_EXT"):
        _load_error = "disabled by GLEAM_NO_EXT=1"
        return None
    try:
        _loaded = build()
        sys.modules[_MODULE_ALIAS] = _loaded
    except Exception as exc:  # noqa: BLE001 - any failure means: fall back, loudly, once
        _load_error = f"{type(exc).__name__}: {exc}"
        tail = "\n".join(str(exc).strip().splitlines()[-15:])
        warnings.warn(
            "gleam_core: the compiled ops could not be built or loaded, so the pure-PyTorch reference "
            f"ops are used (correct, slower). Reason:\n{tail}\n"
            "Fix the toolchain (a C++17 compiler and ninja) and run `gleam-build --force`.",
            RuntimeWarning, stacklevel=2)
    return _loaded


def load_error() -> str | None:
    """Why the compiled extension is not in use (None when it is, or before the first load)."""
    return _load_error


def first_error_line(log: str) -> str:
    """The compiler's first error in a build log (the line a user needs), else its last line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip() and not ln.lstrip().startswith("collect2")]
    for ln in lines:
        low = ln.lower()
        if ("error:" in low or low.startswith("#error") or " error " in low or "cannot find -l" in low
                or "undefined reference" in low):
            return ln
    return lines[-1] if lines else "unknown error"


def fallback_reason() -> str | None:
    """Why the reference ops serve instead of the compiled ones, as shown by ``ops.backend()``:
    ``"GLEAM_NO_EXT=1"`` or ``"compiled build failed: <first error line>"``; None when compiled."""
    if _load_error is None:
        return None
    if _truthy("GLEAM_NO_EXT"):
        return "GLEAM_NO_EXT=1"
    return f"compiled build failed: {first_error_line(_load_error)}"


def main(argv: list[str] | None = None) -> int:
    """``gleam-build``: compile the extension now and print what was built."""
    import argparse

    parser = argparse.ArgumentParser(prog="gleam-build", description=main.__doc__)
    parser.add_argument("--force", action="store_true", help="rebuild even if a cached build exists")
    parser.add_argument("--verbose", action="store_true", help="show compiler commands and output")
    parser.add_argument("--print-dir", action="store_true", help="print the build directory and exit")
    args = parser.parse_args(argv)
    cfg = build_config()
    if args.print_dir:
        print(cfg["build_dir"])
        return 0
    start = time.time()
    try:
        module = build(force=args.force, verbose=args.verbose)
    except Exception as exc:  # noqa: BLE001 - report any build failure as one clear line and exit 1
        text = f"{type(exc).__name__}: {exc}"
        print("gleam-build: the build FAILED; first error:\n  " + first_error_line(text), file=sys.stderr)
        print("last lines of the log:\n" + "\n".join(text.strip().splitlines()[-15:]), file=sys.stderr)
        print("rerun with --verbose for the full compiler output", file=sys.stderr)
        return 1
    info = module.build_info()
    print(f"gleam_core extension ready in {time.time() - start:.1f} s: {cfg['build_dir']}")
    for k, v in sorted(info.items()):
        print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
