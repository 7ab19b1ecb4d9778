"""Full memory accounting of one training step, computed on fake tensors.

:func:`estimate_step_memory` builds the spec's network and strategy with real (small)
parameters, then runs two real training steps of the strategy's own code under
``FakeTensorMode``: every activation, gradient and optimizer state is a fake tensor (shape,
dtype, no storage), so a full-scale 3D step takes seconds and no memory. Two steps, because
Adam's state appears at the first ``step()``; the second step's peak holds it.

What is counted, and how:

- Every storage an op allocates during the steps is tracked until it is freed (a dispatch mode
  on the fake tensors), which gives the exact peak of live bytes. At the peak it is split into
  gradients, optimizer state, activations (tensors held for backward, from the strategy's own
  saved-tensor meter, :mod:`gleam_core.train.memory`) and temporaries (the rest: outputs not
  saved, gradients of activations, op workspace). Parameters, buffers and the batch (k-space,
  maps, mask, target, ``A^H y``) are resident throughout and added to the peak.
- ``saved_peak``: the meter's own peak over the step (the figure the training log reports on
  the CPU), which may come at another moment than the overall peak.
- Op workspaces are invisible to tensors (the compiled kernels allocate them internally), so
  :func:`op_workspace` models them from the source (csrc/ops): CPU CG keeps 3 image-sized
  vectors; CUDA ops run cuFFT on chunks of coils (at most two chunk buffers of <= 256 MiB alive,
  none for the fused row kernel of 1D masks), CUDA CG keeps 2 more image-sized vectors. Each
  call's workspace counts on top of what is live when it runs.

CUDA targets are planned on fake CPU tensors (same shapes and dtypes) with the CUDA workspace
model; allocator rounding (512 B blocks) and cuDNN convolution workspaces are not modelled.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

from ..models import Problem, UnrolledNet, fft_ndim_of
from ..train import memory as saved_meter
from ..train.spec import COMPUTE_DTYPES, Spec
from ..train.strategies import STRATEGIES, Strategy
from .geometry import Geometry, geometry_of

CHUNK_BYTES = 256 << 20  # the CUDA ops' default coil-chunk buffer bound (csrc/ops/cuda/cuda_common.h)


@dataclass
class MemoryReport:
    """Bytes of one training step at its peak, by category (:meth:`categories` sum to
    ``peak_bytes``); ``workspace`` is the largest op workspace of the step (counted in
    ``temporaries`` when the peak falls inside that op).

    ``saved_peak``: the peak of tensors saved for backward (may occur at another moment than the
    overall peak; activations at the peak are usually close to it). ``module_*``: per GLEAM
    module (one entry for whole-network strategies). ``device``: the target ("cpu"/"cuda").
    """

    strategy: str
    modules: int | None
    segments: int | None
    device: str
    geometry: Geometry
    parameters: int
    buffers: int
    gradients: int
    optimizer_state: int
    activations: int
    temporaries: int
    batch: int
    workspace: int
    peak_bytes: int
    saved_peak: int
    module_parameters: list[int] = field(default_factory=list)
    module_optimizer_state: list[int] = field(default_factory=list)
    seconds: float = 0.0

    def categories(self) -> dict[str, int]:
        """The categories that make up ``peak_bytes``."""
        return {k: getattr(self, k) for k in ("parameters", "buffers", "gradients", "optimizer_state", "activations",
                                              "temporaries", "batch")}


def _image_bytes(shape: tuple[int, ...], dtype: torch.dtype) -> int:
    return math.prod(shape) * dtype.itemsize


def op_workspace(name: str, args: tuple, device: str) -> int:
    """Bytes a ``gleam::`` op allocates internally beyond its outputs (see the module docstring)."""
    if name == "cg_solve":
        b = args[0]
        return (3 if device == "cpu" else 2) * _image_bytes(tuple(b.shape), b.dtype) + \
            (_cuda_chunks(args[1], args[2], args[5], b) if device == "cuda" else 0)
    if device != "cuda":
        return 0  # CPU kernels: per-thread blocks of 8 coils x one row or slice (a few MiB at most)
    x, maps, mask = args[0], args[1], args[2] if name != "dc_gradient_step" else args[3]
    dims = args[3] if name != "dc_gradient_step" else args[5]
    if name == "dc_gradient_step":
        maps = args[2]
    return _cuda_chunks(maps, mask, dims, x)


def _cuda_chunks(maps: Tensor, mask: Tensor, fft_dims: list[int], x: Tensor) -> int:
    """Two coil-chunk buffers (the chunk and its transform) unless the fused row kernel applies
    (the mask varies along the last axis only: csrc/kernels/cuda/normal_rows)."""
    spatial = tuple(maps.shape[3:])
    varying = [a for a in range(mask.dim() - len(spatial), mask.dim()) if mask.shape[a] > 1]
    if len(varying) <= 1 and (not varying or varying[0] == mask.dim() - 1):
        return 0
    per_coil = x.shape[0] * math.prod(spatial) * x.dtype.itemsize
    chunk = min(max(CHUNK_BYTES // max(per_coil, 1), 1), maps.shape[1])
    return 2 * chunk * per_coil


class _LiveBytes(TorchDispatchMode):
    """Live bytes of the storages that ops allocate while it is active (fake or real), their
    peak, and that peak's split into categories (``snapshot()`` at new peaks, at most every
    0.2% of growth: the total is exact, the split approximate to that). ``gleam::`` calls add
    their modelled workspace (:func:`op_workspace`) on top of what is live when they run."""

    def __init__(self, device: str, snapshot: Callable[[], dict[str, int]]) -> None:
        super().__init__()
        self.device, self.snapshot = device, snapshot
        self.live: dict[int, int] = {}
        self.current = self.peak = self.largest_workspace = 0
        self.at_peak: dict[str, int] = {}

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key)

    def _reach(self, total: int) -> None:
        if total > self.peak:
            if not self.at_peak or total > self.peak * 1.002 or total - self.peak > (1 << 20):
                self.at_peak = self.snapshot()
            self.peak = total

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in pytree.tree_leaves(out):
            if isinstance(t, Tensor):
                st = t.untyped_storage()
                key = st._cdata
                if key not in self.live:
                    self.live[key] = st.nbytes()
                    self.current += self.live[key]
                    weakref.finalize(st, self._free, key)
        self._reach(self.current)
        if getattr(func, "namespace", "") == "gleam":
            ws = op_workspace(func._opname, args, self.device)
            self.largest_workspace = max(self.largest_workspace, ws)
            self._reach(self.current + ws)
        return out


def configure(spec: Spec, strategy: str | None = None, *, segments: int | None = None, modules: int | None = None,
              unrolls: int | None = None) -> Spec:
    """A copy of ``spec`` set to one candidate: ``strategy`` with checkpoint segment size
    ``segments`` or GLEAM ``modules``, and ``unrolls`` (None keeps the spec's)."""
    spec = dataclasses.replace(spec, model=dataclasses.replace(spec.model), checkpoint=dataclasses.replace(
        spec.checkpoint), gleam=dataclasses.replace(spec.gleam))
    if strategy is not None:
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        spec.strategy = strategy
    if spec.strategy == "auto":
        raise ValueError("strategy 'auto' is what the planner resolves; pass a concrete strategy to estimate")
    if unrolls is not None:
        spec.model.unrolls = unrolls
    u = spec.model.unrolls
    if segments is not None:
        spec.checkpoint.segment = segments
    if modules is not None:
        spec.gleam.modules = modules
    if spec.strategy == "checkpoint" and u % spec.checkpoint.segment:
        raise ValueError(f"segments={spec.checkpoint.segment} must divide the unrolls ({u})")
    if spec.strategy == "gleam" and u % spec.gleam.modules:
        raise ValueError(f"modules={spec.gleam.modules} must divide the unrolls ({u})")
    return spec


def build_strategy_for(spec: Spec, geometry: Geometry, device: torch.device, total: int = 1000) -> Strategy:
    """The spec's model and strategy on ``device``, built by gleam-train's own ``build_strategy``,
    with GLEAM on one lane in sequence (planning is per device, least-memory order) and the
    invertible inverses without the data-dependent early stop (fake tensors have no values) and
    at most 3 iterations (each frees its temporaries, so more do not raise the peak)."""
    from ..train.trainer import build_strategy
    spec = dataclasses.replace(
        spec, gleam=dataclasses.replace(spec.gleam, devices=None, overlap=False),
        invertible=dataclasses.replace(spec.invertible, iters=min(spec.invertible.iters, 3), tol=0.0))
    share = spec.gleam.modules if spec.strategy == "gleam" else 1
    model = UnrolledNet.build(spec.model, geometry.kind, geometry.sets, share)
    model.set_compute_dtype(COMPUTE_DTYPES[spec.precision])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. invertible's Lipschitz advice: irrelevant to memory
        return build_strategy(spec, model, total, device)


def batch_tensors(geometry: Geometry, device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """A batch of ``geometry`` (random values): kspace, maps, mask, target."""
    g = geometry
    return {"kspace": torch.randn(g.batch, g.coils, *g.spatial, dtype=g.dtype, device=device),
            "maps": torch.randn(g.batch, g.coils, g.sets, *g.spatial, dtype=g.dtype, device=device),
            "mask": (torch.rand(g.batch, 1, *g.mask_spatial, device=device) < 0.5).to(g.dtype.to_real()),
            "target": torch.randn(g.batch, g.sets, *g.spatial, dtype=g.dtype, device=device)}


def _updaters(strategy: Strategy) -> list:
    """Each optimizer owner of the strategy (one, or one per GLEAM module)."""
    if hasattr(strategy, "units"):
        return [u.updater for u in strategy.units]
    return [strategy.updater]


def _state_bytes(optimizer: torch.optim.Optimizer) -> int:
    return sum(t.untyped_storage().nbytes() for s in optimizer.state.values() for t in s.values()
               if isinstance(t, Tensor))


def estimate_step_memory(spec: Spec, strategy: str | None = None, *, segments: int | None = None,
                         modules: int | None = None, unrolls: int | None = None, device: str = "cpu",
                         geometry: Geometry | None = None) -> MemoryReport:
    """Full memory of one training step of ``spec`` (overridden by ``strategy``, checkpoint
    ``segments`` (unrolls per segment), GLEAM ``modules``, ``unrolls``) on a ``device`` ("cpu" or
    "cuda") with the batch ``geometry`` (default: :func:`geometry_of` the spec). Runs on fake
    tensors: seconds, no memory, no GPU needed. GLEAM modules run one after the other on one
    device (the least-memory order); spread over P devices each holds about its share.
    """
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    t0 = time.perf_counter()
    spec = configure(spec, strategy, segments=segments, modules=modules, unrolls=unrolls)
    geometry = geometry if geometry is not None else geometry_of(spec)
    strat = build_strategy_for(spec, geometry, torch.device("cpu"))
    if hasattr(strat, "_warned"):
        strat._warned = True  # the invertible strategy would read its inversion error's value
    model = strat.model
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    with fake:
        batch = batch_tensors(geometry)
        problem = Problem.from_data(batch["kspace"], batch["maps"], batch["mask"], fft_ndim_of(geometry.kind))
    twins = [fake.from_tensor(p) for p in model.parameters()] + [fake.from_tensor(b) for b in model.buffers()]
    updaters = _updaters(strat)
    params = list(model.parameters())

    def snapshot() -> dict[str, int]:
        roots = {id(m.parent or m): (m.parent or m) for m in saved_meter._ACTIVE}
        return {"gradients": sum(p.grad.untyped_storage().nbytes() for p in params if p.grad is not None),
                "optimizer_state": sum(_state_bytes(u.optimizer) for u in updaters),
                "activations": sum(m.current for m in roots.values())}

    live = _LiveBytes(device, snapshot)
    saved = 0
    with fake, saved_meter.also_excluded(twins), live:
        for _ in range(2):
            result = strat.train_step(problem, batch["target"])
            saved = max(saved, int(result.peak_memory))
    fixed = {"parameters": sum(p.numel() * p.element_size() for p in params),
             "buffers": sum(b.numel() * b.element_size() for b in model.buffers()),
             "batch": sum(t.untyped_storage().nbytes() for t in {id(t): t for t in (
                 *batch.values(), problem.ahy, problem.op.mask)}.values())}
    at = live.at_peak or {"gradients": 0, "optimizer_state": 0, "activations": 0}
    temporaries = max(0, live.peak - at["gradients"] - at["optimizer_state"] - at["activations"])
    module_params = [sum(p.numel() * p.element_size() for p in u.params) for u in updaters]
    module_opt = [_state_bytes(u.optimizer) for u in updaters]
    return MemoryReport(
        strategy=spec.strategy, modules=spec.gleam.modules if spec.strategy == "gleam" else None,
        segments=spec.checkpoint.segment if spec.strategy == "checkpoint" else None, device=device,
        geometry=geometry, parameters=fixed["parameters"], buffers=fixed["buffers"], gradients=at["gradients"],
        optimizer_state=at["optimizer_state"], activations=at["activations"], temporaries=temporaries,
        batch=fixed["batch"], workspace=live.largest_workspace, peak_bytes=sum(fixed.values()) + live.peak,
        saved_peak=saved,
        module_parameters=module_params, module_optimizer_state=module_opt, seconds=time.perf_counter() - t0)
