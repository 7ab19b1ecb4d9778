"""Training-step memory, measured the same way for every strategy.

CPU: :class:`SavedTensorMeter` counts the bytes autograd holds for backward (saved tensors),
through ``torch.autograd.graph.saved_tensors_hooks``, deduplicated by storage
(``untyped_storage().data_ptr()``). Parameters are excluded, and so are the batch's constants
(sensitivity maps, mask, target): they are the same for every strategy and not activations,
and counting them once per GLEAM module would hide how activations scale. It tracks liveness, not only the
forward's saved set: each saved tensor is released (by a weakref finalizer) when autograd
drops it, so the peak covers the forward and the backward, including what gradient
checkpointing recomputes and keeps during backward (:func:`count_inner_saves`) and what the
invertible strategy re-saves while it recomputes one unroll at a time.
CUDA: ``torch.cuda.max_memory_allocated`` over the step, minus what was allocated at its start.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

_ACTIVE: list["SavedTensorMeter"] = []
_PAUSED = [False]   # set by no_metering(): meters then install no hooks
_ALSO_EXCLUDED: set[int] = set()


def _storage_key(t: Tensor) -> int:
    """Identifies a tensor's storage, shared by its views; works for fake tensors, which have no
    data pointer."""
    return t.untyped_storage()._cdata


@contextlib.contextmanager
def also_excluded(tensors: Iterable[Tensor]) -> Iterator[None]:
    """Meters built inside the block do not count ``tensors`` either (the planner's fake twins of
    real parameters, which a strategy's own exclusion list cannot know)."""
    keys = {_storage_key(t) for t in tensors} - _ALSO_EXCLUDED
    _ALSO_EXCLUDED.update(keys)
    try:
        yield
    finally:
        _ALSO_EXCLUDED.difference_update(keys)


class _Saved:
    """What the meter's own pack hook hands autograd: the saved tensor, plus a weakref target."""

    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor


def _top_hooks():
    return torch._C._autograd._top_saved_tensors_default_hooks(False)


class SavedTensorMeter:
    """Live and peak bytes of tensors saved for backward while the meter is entered.

    Args:
        exclude: tensors whose storages are not counted (the model's parameters).
        parent: a meter that also receives every count (e.g. a whole-step meter above
            per-module meters); it deduplicates storages on its own.

    ``peak`` is the high-water mark in bytes since construction or :meth:`reset`; ``current`` the
    bytes still held. Use as ``with meter: loss = ...; loss.backward()``: backward must run
    inside too, so that tensors saved while recomputing are counted.
    """

    def __init__(self, exclude: Iterable[Tensor] = (), parent: "SavedTensorMeter | None" = None) -> None:
        self._excluded = {_storage_key(t) for t in exclude} | _ALSO_EXCLUDED
        self._live: dict[int, list[int]] = {}  # storage key -> [holders, bytes]
        self.parent = parent
        self.current = 0
        self.peak = 0
        self._stack: contextlib.ExitStack | None = None

    def reset(self) -> None:
        """Starts a new peak from what is held now."""
        self.peak = self.current

    def _acquire(self, ptr: int, nbytes: int) -> None:
        entry = self._live.get(ptr)
        if entry is None:
            self._live[ptr] = [1, nbytes]
            self.current += nbytes
            self.peak = max(self.peak, self.current)
        else:
            entry[0] += 1
        if self.parent is not None:
            self.parent._acquire(ptr, nbytes)

    def _release(self, ptr: int) -> None:
        entry = self._live[ptr]
        entry[0] -= 1
        if entry[0] == 0:
            del self._live[ptr]
            self.current -= entry[1]
        if self.parent is not None:
            self.parent._release(ptr)

    def _track(self, storage_of: Tensor, holder: object) -> None:
        """Counts ``storage_of``'s storage until ``holder`` (what autograd keeps) is freed."""
        storage = storage_of.untyped_storage()
        ptr, nbytes = storage._cdata, storage.nbytes()
        if nbytes == 0 or ptr in self._excluded:
            return
        self._acquire(ptr, nbytes)
        weakref.finalize(holder, self._release, ptr)

    def hooks(self, inner: tuple | None = None) -> torch.autograd.graph.saved_tensors_hooks:
        """The saved-tensor hooks of this meter; with ``inner`` (another pack/unpack pair) it
        delegates to that pair and counts only the tensors the inner pack keeps."""
        if inner is None:
            def pack(x: Tensor) -> _Saved:
                holder = _Saved(x)
                self._track(x, holder)
                return holder

            def unpack(holder: _Saved) -> Tensor:
                return holder.tensor
        else:
            inner_pack, unpack = inner

            def pack(x: Tensor) -> object:
                packed = inner_pack(x)
                if isinstance(packed, Tensor):  # e.g. checkpoint's recomputation keeps this tensor
                    self._track(packed, packed)
                return packed
        pack.gleam_meter = self  # type: ignore[attr-defined]
        return torch.autograd.graph.saved_tensors_hooks(pack, unpack)

    def __enter__(self) -> "SavedTensorMeter":
        if _PAUSED[0]:
            return self
        top = _top_hooks()
        # Delegate to foreign hooks, never to another meter's (a parent gets its counts directly).
        inner = None if top is None or getattr(top[0], "gleam_meter", None) is not None else top
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(self.hooks(inner))
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stack is None:   # entered while paused
            return
        _ACTIVE.remove(self)
        self._stack.close()
        self._stack = None


@contextlib.contextmanager
def no_metering() -> Iterator[None]:
    """Training steps inside measure no CPU memory: meters install no saved-tensor hooks (so no
    Python runs per saved tensor) and report a peak of 0, and checkpointing keeps its early stop.
    For timing steps (benchmarks/strategies.py measures memory in a separate pass)."""
    _PAUSED[0] = True
    try:
        yield
    finally:
        _PAUSED[0] = False


def metering() -> bool:
    """Whether a :class:`SavedTensorMeter` is active."""
    return bool(_ACTIVE)


@contextlib.contextmanager
def count_inner_saves() -> Iterator[None]:
    """Keeps the innermost active meter counting inside code that runs under another library's
    saved-tensor hooks (``torch.utils.checkpoint`` installs its own while it runs and while it
    recomputes in backward, which hides the meter's hooks). A no-op when no meter is active."""
    top = _top_hooks()
    if not _ACTIVE or top is None or getattr(top[0], "gleam_meter", None) is not None:
        yield
        return
    with _ACTIVE[-1].hooks(top):
        yield


@contextlib.contextmanager
def cuda_peaks(devices: Iterable[torch.device]) -> Iterator[dict]:
    """``m["peak"]``: the largest (max_memory_allocated - allocated at entry) over CUDA ``devices``."""
    devices = list(dict.fromkeys(devices))
    start = {}
    for d in devices:
        torch.cuda.reset_peak_memory_stats(d)
        start[d] = torch.cuda.memory_allocated(d)
    result = {"peak": 0}
    yield result
    result["peak"] = max(torch.cuda.max_memory_allocated(d) - start[d] for d in devices)


class StepMemory:
    """Peak memory of one training step on ``device``: saved-for-backward bytes on the CPU
    (a :class:`SavedTensorMeter` excluding ``params``), allocator peak on CUDA. The same probe
    serves every strategy."""

    def __init__(self, device: torch.device, params: Iterable[Tensor]) -> None:
        self.device = torch.device(device)
        self._params = list(params)

    def meter(self, parent: SavedTensorMeter | None = None, constants: Iterable[Tensor] = ()) -> SavedTensorMeter:
        """A meter excluding the parameters and ``constants`` (the batch's maps, mask, target)."""
        return SavedTensorMeter([*self._params, *constants], parent)

    @contextlib.contextmanager
    def measure(self, constants: Iterable[Tensor] = ()) -> Iterator[dict]:
        """``with probe.measure(constants) as m: ...``; afterwards ``m["peak"]`` holds the step's
        peak bytes."""
        if self.device.type == "cuda":
            with cuda_peaks([self.device]) as result:
                yield result
            return
        result = {"peak": 0}
        with self.meter(constants=constants) as meter:
            yield result
        result["peak"] = meter.peak
