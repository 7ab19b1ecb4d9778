"""Stub shared libraries that let a CUDA build of torch be imported on a machine without the
NVIDIA runtime wheels (cuDNN, NCCL, cuBLAS, ...) and without a GPU driver.

Used only by ``tests/cuda_compile.sh``: the CUDA compile check needs ``import torch`` (for
``cpp_extension`` and the headers) and loads the built extension, but never runs a CUDA
call. Each library that torch's shared objects need and the machine lacks is replaced by an
empty library with the same soname, the same symbol version nodes, and a do-nothing
definition of every symbol torch takes from it, so the dynamic loader is satisfied. Calling
any of them would do nothing; nothing in the check calls them.

    python tests/cuda_stub_libs.py TORCH_LIB_DIR OUT_DIR
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


def _run(*cmd: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          env=env).stdout


def _dyn_symbols(lib: Path) -> list[tuple[str, str, str]]:
    """(name, version, 'UND' or 'DEF') for each global/weak dynamic symbol."""
    rows = []
    for line in _run("readelf", "--dyn-syms", "-W", str(lib)).splitlines():
        parts = line.split()
        if len(parts) < 8 or not parts[0].endswith(":") or parts[4] not in ("GLOBAL", "WEAK"):
            continue
        name, _, version = parts[7].partition("@")
        version = version.lstrip("@").split(" ")[0]
        rows.append((name, version, "UND" if parts[6] == "UND" else "DEF", parts[4]))
    return rows


def _version_owners(lib: Path) -> dict[str, str]:
    """Version node name -> the soname that must define it, from the 'Version needs' section."""
    owners, current = {}, None
    for line in _run("readelf", "-V", "-W", str(lib)).splitlines():
        if m := re.search(r"File: (\S+)", line):
            current = m.group(1)
        elif (m := re.search(r"Name: (\S+)", line)) and current:
            owners[m.group(1)] = current
    return owners


def main(torch_lib: str, out_dir: str) -> int:
    lib_dir, out = Path(torch_lib), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch_libs = sorted(lib_dir.glob("*.so"))
    # Look without the stubs (which may be stale after a torch upgrade): regenerate them all.
    search = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d and Path(d).resolve() != out.resolve()]
    ldd_env = {"LD_LIBRARY_PATH": ":".join(search), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    ldd = {lib: _run("ldd", str(lib), env=ldd_env) for lib in torch_libs}
    missing = {m.group(1) for text in ldd.values() for m in re.finditer(r"^\s*(\S+) => not found", text, re.M)}
    if not missing:
        print("cuda_stub_libs: nothing missing")
        return 0
    defined: set[str] = set()
    undefined: dict[str, str] = {}
    owners: dict[str, str] = {}
    for lib in torch_libs:
        owners.update(_version_owners(lib))
        for name, version, kind, bind in _dyn_symbols(lib):
            if kind == "DEF":
                defined.add(name)
            elif bind == "GLOBAL":
                undefined.setdefault(name, version)
    # Symbols the machine's real libraries (libc, libstdc++, cudart, ...) provide stay theirs.
    for text in ldd.values():
        for path in re.findall(r"=> (/\S+)", text):
            defined.update(n for n, _, k, _ in _dyn_symbols(Path(path)) if k == "DEF")
    defined.update(n for n, _, k, _ in _dyn_symbols(Path(sys.executable).resolve()) if k == "DEF")
    wanted = {n: v for n, v in undefined.items() if n not in defined and not n.startswith(("Py", "_Py"))}
    for soname in sorted(missing):
        # A versioned reference must find its version node in the library that owns it;
        # unversioned ones are defined in every stub (the loader takes the first).
        nodes = sorted(v for v, owner in owners.items() if owner == soname)
        src = out / f"{soname}.c"
        lines = [f"void {n}(void) {{}}\n" for n, v in sorted(wanted.items()) if v == ""]
        # A symbol referenced as name@NODE gets that version through a .symver alias.
        for i, (n, v) in enumerate(sorted((n, v) for n, v in wanted.items() if v in nodes)):
            lines.append(f"void gleam_stub_{i}(void) {{}}\n__asm__(\".symver gleam_stub_{i},{n}@@{v}\");\n")
        src.write_text("".join(lines) or "void gleam_stub(void) {}\n")
        script = out / f"{soname}.map"
        script.write_text("".join(f"{node} {{ global: *; }};\n" for node in nodes) or f"{soname} {{ global: *; }};\n")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(out / soname), f"-Wl,-soname,{soname}",
                        f"-Wl,--version-script={script}", str(src)], check=True)
    print(f"cuda_stub_libs: stubbed {len(missing)} libraries ({', '.join(sorted(missing))}) "
          f"with {len(wanted)} symbols in {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1], sys.argv[2]))
