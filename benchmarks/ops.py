"""Benchmark of the SENSE operators: gleam ops vs the naive fastMRI-style composition vs the
best pure-PyTorch version we could write vs the FFT floor, ratios from one run.

Usage:
    python benchmarks/ops.py [--device cpu|cuda] [--cases knee2d,brain2d,knee3d,cine]
                             [--ops forward,adjoint,normal,cg,maps_grad] [--markdown FILE] [--no-memory]

Time: median of repeated calls, implementations interleaved round-robin so that drift of a
shared machine hits all of them alike (CUDA: device events). Extra peak memory: on the CPU,
peak RSS growth of a fresh process running one call (everything the call allocates, torch's
allocator, MKL buffers and our kernels' workspaces alike; the peak is reset through
/proc/self/clear_refs right before the call); on CUDA, max_memory_allocated
above the inputs. The floor is one batched torch.fft.fftn of the coil stack.

Implementations:
  gleam  gleam_core.ops (compiled kernels; readout decoupling from the compact mask)
  naive  x*maps -> ifftshift -> fftn -> fftshift -> *mask and back, full coil stack (fastMRI style)
  best   pure PyTorch, readout-decoupled, coils in chunks of 4, shifts folded into a pre-shifted
         mask and pre-shifted maps (computed once, outside the timing, as an operator object would)

The ``maps_grad`` row times one training use of the normal op with learned maps: forward of
A^H A x and backward with gradients w.r.t. x and the maps (upstream gradient x). gleam: the
compiled backward formulas (gleam::sense_normal_maps_grad, no coil stack saved); naive and best:
autograd through their compositions (the shifted copy of the maps is made inside the timing,
since it depends on the maps being learned). Floor: 8 FFTs of the coil stack (gleam's count).

sigpy, where installed (with CuPy for --device cuda): a second table for the normal op on one
image in sigpy's shapes (maps (C, *S), image (*S); cases whose FFT covers all of S), timing
sigpy.mri.linop.Sense(maps, weights=mask**2).N against gleam_core.interop.sigpy.Sense(maps,
mask).N (our fused op through the Linop adapter, on NumPy/CuPy arrays) and SenseOp.normal on
torch tensors (the adapter's overhead); --no-sigpy leaves it out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch

from gleam_core import ops
from machine import sync


@dataclass(frozen=True)
class Case:
    name: str
    coils: int
    spatial: tuple[int, ...]
    fft_ndim: int
    note: str


CASES = {
    "knee2d": Case("knee2d", 15, (640, 368), 2, "1D random mask 4x"),
    "brain2d": Case("brain2d", 16, (320, 320), 2, "1D equispaced mask 8x"),
    "knee3d": Case("knee3d", 8, (256, 160, 80), 3, "2D variable-density mask 8x on (160, 80)"),
    "cine": Case("cine", 12, (20, 192, 160), 2, "per-frame 1D masks 8x"),
}
OPS = ["forward", "adjoint", "normal", "cg", "maps_grad"]
MAPS_GRAD_IMPLS = ("gleam", "naive", "best")  # implementations the maps_grad row compares
CG_ITERS = 10


def make_mask(case: Case, gen: torch.Generator) -> torch.Tensor:
    """Compact masks (size 1 on constant axes), like gleam_core.data produces."""
    if case.name == "knee2d":  # fastMRI random: 8% center, rest random to 4x
        w = case.spatial[-1]
        m = torch.rand(w, generator=gen) < (w / 4 - round(0.08 * w)) / (w - round(0.08 * w))
        c = round(0.08 * w)
        m[(w - c + 1) // 2:(w - c + 1) // 2 + c] = True
        return m.float().reshape(1, 1, 1, w)
    if case.name == "brain2d":  # equispaced 8x, 4% center
        w = case.spatial[-1]
        m = torch.zeros(w, dtype=torch.bool)
        m[int(torch.randint(8, (1,), generator=gen))::8] = True
        c = round(0.04 * w)
        m[(w - c + 1) // 2:(w - c + 1) // 2 + c] = True
        return m.float().reshape(1, 1, 1, w)
    if case.name == "knee3d":  # variable density over (ky, kz), 20x20 calibration, ~8x
        h, w = case.spatial[1:]
        ky = torch.linspace(-1, 1, h).reshape(-1, 1)
        kz = torch.linspace(-1, 1, w).reshape(1, -1)
        density = 1 / (1 + 20 * (ky ** 2 + kz ** 2))
        density = density * (h * w / 8) / density.sum()
        m = torch.rand(h, w, generator=gen) < density.clamp(max=1)
        m[h // 2 - 10:h // 2 + 10, w // 2 - 10:w // 2 + 10] = True
        return m.float().reshape(1, 1, 1, h, w)
    t, _, w = case.spatial  # cine: a different random 8x line set per frame, 8 center lines
    m = torch.rand(t, w, generator=gen) < (w / 8 - 8) / (w - 8)
    m[:, w // 2 - 4:w // 2 + 4] = True
    return m.float().reshape(1, 1, t, 1, w)


def make_inputs(case: Case, device: str, seed: int = 0):
    """x, maps (normalized to unit coil energy), y, mask. Built one coil at a time, without
    coil-stack temporaries, so that a memory measurement starts from a flat baseline."""
    gen = torch.Generator().manual_seed(seed)
    maps_spatial = (1, *case.spatial[1:]) if case.name == "cine" else case.spatial
    x = torch.randn(1, 1, *case.spatial, dtype=torch.complex64, generator=gen)
    maps = torch.empty(1, case.coils, 1, *maps_spatial, dtype=torch.complex64)
    y = torch.empty(1, case.coils, *case.spatial, dtype=torch.complex64)
    energy = torch.zeros(maps_spatial)
    for c in range(case.coils):
        torch.randn(maps_spatial, dtype=torch.complex64, generator=gen, out=maps[0, c, 0])
        torch.randn(case.spatial, dtype=torch.complex64, generator=gen, out=y[0, c])
        energy += maps[0, c, 0].abs() ** 2
    energy.sqrt_()
    for c in range(case.coils):
        maps[0, c, 0].div_(energy)
    mask = make_mask(case, gen)
    return x.to(device), maps.to(device), y.to(device), mask.to(device)


# ---- naive: the fastMRI-style composition with a materialized coil stack ----

class Naive:
    def __init__(self, maps, mask, fft_ndim):
        self.maps, self.mask, self.dims = maps[:, :, 0], mask[:, 0], tuple(range(-fft_ndim, 0))

    def forward(self, x):
        return ops.fftnc(self.maps * x, self.dims) * self.mask

    def adjoint(self, y):
        return (self.maps.conj() * ops.ifftnc(y * self.mask, self.dims)).sum(1, keepdim=True)

    def normal(self, x):
        return self.adjoint(self.forward(x))

    def cg(self, b, lam, iters):
        return _cg(lambda v: self.normal(v) + lam * v, b, iters)


def _cg(apply, b, iters):
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = torch.vdot(r.flatten(), r.flatten()).real
    for _ in range(iters):
        ap = apply(p)
        alpha = rs / torch.vdot(p.flatten(), ap.flatten()).real
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = torch.vdot(r.flatten(), r.flatten()).real
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


# ---- best pure PyTorch: decoupled, chunked, shifts folded into pre-shifted mask and maps ----

class Best:
    CHUNK = 4

    def __init__(self, maps, mask, fft_ndim):
        self.all_dims = tuple(range(-fft_ndim, 0))
        self.dims = tuple(d for d in self.all_dims if mask.shape[d] > 1)  # decoupled axes
        m = mask[:, 0]
        # Operating in ifftshift-ed coordinates, the centering shifts become one roll of the
        # image in and one out; maps and mask are shifted once here.
        self.maps = torch.fft.ifftshift(maps[:, :, 0], dim=self.all_dims).contiguous()
        self.mask_full = torch.fft.ifftshift(m, dim=self.all_dims).contiguous()

    def normal(self, x):
        xs = torch.fft.ifftshift(x[:, 0], dim=self.all_dims)
        out = torch.zeros_like(xs)
        for c0 in range(0, self.maps.shape[1], self.CHUNK):
            s = self.maps[:, c0:c0 + self.CHUNK]
            t = s * xs.unsqueeze(1)
            if self.dims:
                t = torch.fft.fftn(t, dim=self.dims)
                t.mul_(self.mask_full)
                t = torch.fft.ifftn(t, dim=self.dims)
            else:
                t.mul_(self.mask_full)
            out += (s.conj() * t).sum(1)
        return torch.fft.fftshift(out, dim=self.all_dims).unsqueeze(1)

    def forward(self, x):
        xs = torch.fft.ifftshift(x[:, 0], dim=self.all_dims)
        out = torch.empty((x.shape[0], self.maps.shape[1], *x.shape[2:]), dtype=x.dtype, device=x.device)
        for c0 in range(0, self.maps.shape[1], self.CHUNK):
            t = torch.fft.fftn(self.maps[:, c0:c0 + self.CHUNK] * xs.unsqueeze(1), dim=self.all_dims, norm="ortho")
            out[:, c0:c0 + self.CHUNK] = torch.fft.fftshift(t.mul_(self.mask_full), dim=self.all_dims)
        return out

    def adjoint(self, y):
        out = torch.zeros((y.shape[0], *y.shape[2:]), dtype=y.dtype, device=y.device)
        for c0 in range(0, self.maps.shape[1], self.CHUNK):
            s = self.maps[:, c0:c0 + self.CHUNK]
            t = torch.fft.ifftshift(y[:, c0:c0 + self.CHUNK], dim=self.all_dims) * self.mask_full
            out += (s.conj() * torch.fft.ifftn(t, dim=self.all_dims, norm="ortho")).sum(1)
        return torch.fft.fftshift(out, dim=self.all_dims).unsqueeze(1)

    def cg(self, b, lam, iters):
        return _cg(lambda v: self.normal(v) + lam * v, b, iters)


class Gleam:
    def __init__(self, maps, mask, fft_ndim):
        self.op = ops.SenseOp(maps, mask, fft_ndim=fft_ndim)

    def forward(self, x):
        return self.op.forward(x)

    def adjoint(self, y):
        return self.op.adjoint(y)

    def normal(self, x):
        return self.op.normal(x)

    def cg(self, b, lam, iters):
        return self.op.cg(b, lam, iters=iters).x


IMPLS = {"gleam": Gleam, "naive": Naive, "best": Best}


def run_op(impl, op: str, x, y):
    if op == "forward":
        return impl.forward(x)
    if op == "adjoint":
        return impl.adjoint(y)
    if op == "normal":
        return impl.normal(x)
    return impl.cg(x, 0.05, CG_ITERS)


def maps_grad_fn(impl_name: str, case: Case, x, maps, mask):
    """Forward and backward of A^H A x w.r.t. x and the maps (the ``maps_grad`` row)."""
    cls = IMPLS[impl_name]
    x = x.detach()

    def fn():
        leaf, xr = maps.detach().requires_grad_(), x.clone().requires_grad_()
        cls(leaf, mask, case.fft_ndim).normal(xr).backward(x)
        return leaf.grad
    return fn


def check_maps_grad_agreement(case: Case, device: str):
    x, maps, _, mask = make_inputs(case, device)
    grads = {k: maps_grad_fn(k, case, x, maps, mask)() for k in MAPS_GRAD_IMPLS}
    for k in ("gleam", "best"):
        err = float((grads[k] - grads["naive"]).norm() / grads["naive"].norm())
        if err > 1e-4:
            raise RuntimeError(f"{case.name}/maps_grad: {k} differs from naive by {err:.2e}")


def floor_fn(case: Case, device: str):
    stack = torch.randn(1, case.coils, *case.spatial, dtype=torch.complex64, device=device)
    dims = tuple(range(-case.fft_ndim, 0))
    return lambda: torch.fft.fftn(stack, dim=dims)


def time_round_robin(fns: dict, device: str, min_reps: int, budget_s: float) -> dict:
    for f in fns.values():  # warm-up: plans, caches, first-touch pages
        f()
    sync(device)
    times = {k: [] for k in fns}
    start = time.perf_counter()
    while True:
        for k, f in fns.items():
            if device == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                f()
                b.record()
                torch.cuda.synchronize()
                times[k].append(a.elapsed_time(b) / 1e3)
            else:
                t0 = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t0)
        n = min(len(v) for v in times.values())
        if n >= min_reps and (time.perf_counter() - start > budget_s or n >= 25):
            break
    return {k: statistics.median(v) for k, v in times.items()}


def check_agreement(case: Case, device: str):
    """The three implementations compute the same thing (guards the benchmark itself)."""
    x, maps, y, mask = make_inputs(case, device)
    impls = {k: cls(maps, mask, case.fft_ndim) for k, cls in IMPLS.items()}
    for op in ("forward", "adjoint", "normal"):
        ref = run_op(impls["naive"], op, x, y)
        for k in ("gleam", "best"):
            err = float((run_op(impls[k], op, x, y) - ref).norm() / ref.norm())
            if err > 1e-4:
                raise RuntimeError(f"{case.name}/{op}: {k} differs from naive by {err:.2e}")


# ---- sigpy (where installed): its Sense normal op against ours through the Linop adapter ----

def sigpy_normal_times(case: Case, device: str, min_reps: int, budget_s: float) -> dict | None:
    """Median normal-op times of sigpy's Sense, our adapter and SenseOp on one image; None when
    sigpy (CuPy on cuda) is missing or sigpy's Sense cannot express the case (FFT over part of S)."""
    if case.fft_ndim != len(case.spatial):
        return None
    try:
        import sigpy.mri
        from gleam_core.interop.sigpy import Sense
        xp = importlib.import_module("numpy" if device == "cpu" else "cupy")
    except ImportError:
        return None
    x, maps, _, mask = make_inputs(case, device)
    to_xp = (lambda t: t.numpy()) if device == "cpu" else xp.from_dlpack  # shared, not copied
    xs, mps, m = to_xp(x[0, 0]), to_xp(maps[0, :, 0]), to_xp(mask[0, 0])
    theirs = sigpy.mri.linop.Sense(mps, weights=m ** 2).N
    ours = Sense(mps, m).N
    op = ops.SenseOp(maps, mask, fft_ndim=case.fft_ndim)
    want = theirs(xs)
    err = float(xp.linalg.norm(ours(xs) - want) / xp.linalg.norm(want))
    if err > 1e-4:
        raise RuntimeError(f"{case.name}/normal: the sigpy adapter differs from sigpy's Sense by {err:.2e}")
    fns = {"sigpy": lambda: theirs(xs), "adapter": lambda: ours(xs), "gleam": lambda: op.normal(x)}
    return time_round_robin(fns, device, min_reps, budget_s)


def render_sigpy(rows: list[dict]) -> list[str]:
    head = "| case | op | sigpy ms | gleam via adapter ms | gleam torch ms | sigpy/adapter | adapter/torch |"
    out = ["", "sigpy's Sense (one image, sigpy's shapes) against ours through gleam_core.interop.sigpy:", "",
           head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        out.append(f"| {r['case']} | normal | {r['sigpy'] * 1e3:.2f} | {r['adapter'] * 1e3:.2f} | "
                   f"{r['gleam'] * 1e3:.2f} | {r['sigpy'] / r['adapter']:.2f} | {r['adapter'] / r['gleam']:.2f} |")
    return out


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_memory_child(case_name: str, impl_name: str, op: str) -> None:
    """Runs in a fresh process: prints the extra peak RSS of one call, in bytes."""
    import ctypes
    case = CASES[case_name]
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    def make_fn(c: Case):
        if impl_name == "floor":
            return floor_fn(c, "cpu")
        x, maps, y, mask = make_inputs(c, "cpu")
        if op == "maps_grad":
            return maps_grad_fn(impl_name, c, x, maps, mask)
        impl = IMPLS[impl_name](maps, mask, c.fft_ndim)
        return lambda: run_op(impl, op, x, y)

    # Warm up on a tiny instance of the same case: first calls load code (MKL, kernels) into
    # RSS for good, which is not the call's working memory, while the tiny instance's data
    # transient stays far below the real one's.
    tiny = Case(case.name, 2, tuple(max(4, n // 16) for n in case.spatial), case.fft_ndim, case.note)
    make_fn(tiny)()
    fn = make_fn(case)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:  # resets the peak RSS (VmHWM) to the current RSS
        f.write("5")
    before = _status_bytes("VmRSS")
    out = fn()
    peak = _status_bytes("VmHWM")
    del out
    print(json.dumps({"extra": max(0, peak - before)}))


def memory_cpu(case: Case, impl: str, op: str) -> float:
    cmd = [sys.executable, __file__, "--_memory-child", case.name, impl, op]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=1800)
    return json.loads(res.stdout.strip().splitlines()[-1])["extra"]


def memory_cuda(case: Case, impl_name: str, op: str) -> float:
    x, maps, y, mask = make_inputs(case, "cuda")
    if impl_name == "floor":
        fn = floor_fn(case, "cuda")
    elif op == "maps_grad":
        fn = maps_grad_fn(impl_name, case, x, maps, mask)
    else:
        fn = (lambda impl: (lambda: run_op(impl, op, x, y)))(IMPLS[impl_name](maps, mask, case.fft_ndim))
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = fn()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del out
    return float(peak)


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:9.2f}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--ops", default=",".join(OPS))
    p.add_argument("--min-reps", type=int, default=5)
    p.add_argument("--budget", type=float, default=4.0, help="seconds of timing per (case, op)")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-sigpy", action="store_true", help="leave out the sigpy table")
    p.add_argument("--markdown", help="also write the table as markdown to this file")
    p.add_argument("--_memory-child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a._memory_child:
        measure_memory_child(*a._memory_child)
        return 0
    dev = a.device
    if dev == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device present")
    machine = torch.cuda.get_device_name() if dev == "cuda" else f"{os.cpu_count()}-core CPU, {torch.get_num_threads()} threads"
    print(f"# gleam ops benchmark on {machine}; torch {torch.__version__}; backend {ops.backend()}")
    rows = []
    for cname in a.cases.split(","):
        case = CASES[cname]
        check_agreement(case, dev)
        x, maps, y, mask = make_inputs(case, dev)
        impls = {k: cls(maps, mask, case.fft_ndim) for k, cls in IMPLS.items()}
        floor = time_round_robin({"floor": floor_fn(case, dev)}, dev, a.min_reps, 1.0)["floor"]
        for op in a.ops.split(","):
            if op == "maps_grad":
                check_maps_grad_agreement(case, dev)
                fns = {k: maps_grad_fn(k, case, x, maps, mask) for k in MAPS_GRAD_IMPLS}
            else:
                fns = {k: (lambda impl=impl: run_op(impl, op, x, y)) for k, impl in impls.items()}
            t = time_round_robin(fns, dev, a.min_reps if op not in ("cg", "maps_grad") else 3, a.budget)
            ffts = {"forward": 1, "adjoint": 1, "normal": 2, "cg": 2 * CG_ITERS, "maps_grad": 8}[op]
            mem = {}
            if not a.no_memory:
                for k in (MAPS_GRAD_IMPLS if op == "maps_grad" else IMPLS):
                    mem[k] = memory_cuda(case, k, op) if dev == "cuda" else memory_cpu(case, k, op)
            rows.append({"case": cname, "op": op, **{f"t_{k}": v for k, v in t.items()}, "floor": floor,
                         "ffts": ffts, **{f"m_{k}": v for k, v in mem.items()}})
            r = rows[-1]
            print(f"{cname:8s} {op:8s} gleam {fmt_ms(r['t_gleam'])} ms  naive {fmt_ms(r['t_naive'])}  "
                  f"best {fmt_ms(r['t_best'])}  floor x{ffts} {fmt_ms(floor * ffts)}", flush=True)
    lines = render(rows, machine, a.no_memory)
    sigpy_rows = []
    if not a.no_sigpy and "normal" in a.ops.split(","):
        for cname in a.cases.split(","):
            t = sigpy_normal_times(CASES[cname], dev, a.min_reps, a.budget)
            if t is not None:
                sigpy_rows.append({"case": cname, **t})
                print(f"{cname:8s} normal   sigpy {fmt_ms(t['sigpy'])} ms  adapter {fmt_ms(t['adapter'])}  "
                      f"torch {fmt_ms(t['gleam'])}", flush=True)
    if sigpy_rows:
        lines += render_sigpy(sigpy_rows)
    print("\n".join(lines))
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


def render(rows, machine: str, no_memory: bool) -> list[str]:
    head = ("| case | op | gleam ms | naive ms | best ms | floor ms (xN) | naive/gleam | best/gleam | "
            "gleam/floor | mem gleam MB | mem naive MB | mem best MB | mem gleam/naive |")
    out = [f"Machine: {machine}; torch {torch.__version__}; ratios from one run.", "", head,
           "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        floor_n = r["floor"] * r["ffts"]
        mem = ("| - | - | - | - |" if no_memory else
               f"| {r['m_gleam'] / 2**20:.1f} | {r['m_naive'] / 2**20:.1f} | {r['m_best'] / 2**20:.1f} | "
               f"{r['m_gleam'] / max(r['m_naive'], 1):.2f} |")
        out.append(f"| {r['case']} | {r['op']} | {r['t_gleam'] * 1e3:.2f} | {r['t_naive'] * 1e3:.2f} | "
                   f"{r['t_best'] * 1e3:.2f} | {floor_n * 1e3:.2f} (x{r['ffts']}) | "
                   f"{r['t_naive'] / r['t_gleam']:.2f} | {r['t_best'] / r['t_gleam']:.2f} | "
                   f"{r['t_gleam'] / floor_n:.2f} " + mem)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
