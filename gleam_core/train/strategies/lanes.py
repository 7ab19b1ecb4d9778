"""Where GLEAM modules run: a device and, on CUDA, a stream of its own.

Hand-offs between lanes are ordered with CUDA events (``record`` then ``wait``), never with a
host synchronize, so work queued on different lanes overlaps on the GPU(s), across batches too:
no lane waits for the end of a whole step. Memory used on a lane but allocated elsewhere is
marked with ``record_stream``, so the caching allocator does not reuse it before that lane is
done. On the CPU a lane is just a device: calls run in issue order.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Iterable

import torch
from torch import Tensor

from ...devices import parse_device  # noqa: F401  (re-exported: strategies name their devices)


class Lane:
    """A device plus (CUDA) a dedicated stream."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def context(self) -> contextlib.AbstractContextManager:
        """Makes this lane's stream current (for its device) inside the block."""
        return torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()

    def record(self) -> "torch.cuda.Event | None":
        """An event marking the work queued on this lane so far (None on the CPU)."""
        if self.stream is None:
            return None
        event = torch.cuda.Event()
        event.record(self.stream)
        return event

    def wait(self, event: "torch.cuda.Event | None") -> None:
        """Orders this lane's later work after ``event`` (GPU-side, no host sync)."""
        if self.stream is not None and event is not None:
            self.stream.wait_event(event)

    def follow_default(self, tensors: Iterable[Tensor] = ()) -> None:
        """This lane's later work waits for the device's default stream (where the batch was
        copied); ``tensors`` (the batch, allocated on that stream) stay allocated until the work
        queued on this lane by then is done, though the host drops them at once."""
        if self.stream is not None:
            self.stream.wait_stream(torch.cuda.default_stream(self.device))
            for t in tensors:
                t.record_stream(self.stream)

    def join_default(self) -> None:
        """The device's default stream waits for this lane (its weights and losses are read there)."""
        if self.stream is not None:
            torch.cuda.default_stream(self.device).wait_stream(self.stream)


class LaneLink:
    """The hand-off queue from one module's lane to the next module's, at most ``depth`` deep.

    :meth:`reserve` (before the sender produces a hand-off) makes the sender's lane wait until the
    hand-off ``depth`` places back has been taken, the GPU-side twin of the credits that bound
    the queue between ranks (:class:`~gleam_core.train.distributed.handoff.Sender`); :meth:`pass_on`
    hands one over. On the CPU, and between modules on one lane, both order nothing.
    """

    def __init__(self, src: Lane, dst: Lane, depth: int) -> None:
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"gleam.queue_depth must be an int >= 1, got {depth!r}")
        if src.device.type != dst.device.type:
            # The hand-off orders only CUDA-to-CUDA (events) and CPU-to-CPU (issue order).
            raise ValueError(f"gleam.devices: a hand-off from {src.device} to {dst.device} mixes CPU and CUDA; "
                             "use all cpu or all cuda:N")
        self.src, self.dst, self.depth = src, dst, depth
        self._taken: deque = deque()  # events: hand-off taken by dst (None on the CPU)
        # A copy between devices runs on the source device's current stream and makes it wait
        # for the destination's: on the sender's own lane that would tie it to the receiver's
        # backlog, so copies get a stream of their own.
        cross = src.stream is not None and src.device != dst.device
        self._copier = torch.cuda.Stream(src.device) if cross else None

    def reserve(self) -> None:
        """Orders the sender's next output after the receiver took the hand-off ``depth`` back."""
        if len(self._taken) >= self.depth:
            self.src.wait(self._taken.popleft())

    def pass_on(self, x: Tensor) -> Tensor:
        """The receiver's input from the sender's output ``x`` (complex (B, M, *S)), on dst's device."""
        if self.src is self.dst or self.src.stream is None:
            return x.to(self.dst.device)
        if self._copier is None:  # two streams of one device
            self.dst.wait(self.src.record())
            x.record_stream(self.dst.stream)
            x_in = x
        else:
            self._copier.wait_event(self.src.record())
            x.record_stream(self._copier)
            with torch.cuda.stream(self._copier), self.dst.context():
                x_in = x.to(self.dst.device, non_blocking=True)  # dst's lane waits for the copy
        self._taken.append(self.dst.record())
        return x_in
