"""Measured memory of one real training step, in a fresh process: what the planner's estimates
are checked against (tests/python/test_plan_measured.py, benchmarks/plan.py).

On CUDA the growth is ``torch.cuda.max_memory_allocated`` over the step minus the allocated
bytes before it. On the CPU:

The child process builds the model, strategy and batch, records its resident set size, resets
the kernel's peak-RSS counter (``/proc/self/clear_refs``), runs one training step and reports
the peak RSS growth (``VmHWM`` minus the RSS before the step). It runs with
``MALLOC_MMAP_THRESHOLD_=65536`` so that glibc returns freed large blocks to the system at once
(its default threshold adapts upwards and keeps freed blocks resident, which would measure the
allocator's cache rather than the step). Linux only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from ..train.schema import to_dict
from ..train.spec import Spec
from .geometry import Geometry


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} (Linux only)")


def _child(payload: dict) -> dict:
    import gc

    import torch

    from ..models import Problem, fft_ndim_of
    from ..train.spec import parse_spec
    from .accounting import batch_tensors, build_strategy_for

    torch.manual_seed(0)
    torch.set_num_threads(payload["threads"])
    spec = parse_spec(payload["spec"], check_data=False)
    g = payload["geometry"]
    geometry = Geometry(**{**g, "spatial": tuple(g["spatial"]), "mask_spatial": tuple(g["mask_spatial"]),
                           "dtype": getattr(torch, g["dtype"].split(".")[-1])})
    device = torch.device(payload.get("device", "cpu"))
    strat = build_strategy_for(spec, geometry, device)
    batch = {k: v.to(device) for k, v in batch_tensors(geometry).items()}
    batch["maps"] /= batch["maps"].abs().square().sum(1, keepdim=True).sqrt()  # normalized maps: ||A^H A|| <= 1
    problem = Problem.from_data(batch["kspace"], batch["maps"], batch["mask"], fft_ndim_of(geometry.kind))
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = strat.train_step(problem, batch["target"])
        torch.cuda.synchronize(device)
        return {"growth_bytes": torch.cuda.max_memory_allocated(device) - before,
                "saved_peak": int(result.peak_memory)}
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    result = strat.train_step(problem, batch["target"])
    peak = _status_kib("VmHWM")
    return {"growth_bytes": (peak - before) * 1024, "saved_peak": int(result.peak_memory)}


def measure_step(spec: Spec, geometry: Geometry, *, threads: int = 1, timeout: float = 300,
                 device: str = "cpu") -> dict:
    """Runs one training step of ``spec`` (its strategy and options) on a batch of ``geometry``
    in a fresh process on ``device`` ("cpu" or "cuda"); returns ``{"growth_bytes": peak growth
    over the step (RSS on the CPU, allocated bytes on CUDA), "saved_peak": the saved-tensor
    meter's peak}``."""
    payload = {"spec": to_dict(spec), "threads": threads, "device": device,
               "geometry": {**dataclasses.asdict(geometry), "dtype": str(geometry.dtype)}}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run([sys.executable, "-m", "gleam_core.plan.measure"], input=json.dumps(payload),
                          capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring a {spec.strategy} step failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.stdin.read()))))
