"""Where GLEAM modules run: a device and, on CUDA, a stream of its own.

Hand-offs between lanes are ordered with CUDA events (``record`` then ``wait``), never with a
host synchronize, so work queued on different lanes overlaps on the GPU(s). On the CPU a lane
is just a device: calls run in issue order.
"""

from __future__ import annotations

import contextlib

import torch

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

    def follow_default(self) -> None:
        """This lane waits for the device's default stream (the batch was copied there)."""
        if self.stream is not None:
            self.stream.wait_stream(torch.cuda.default_stream(self.device))

    def join_default(self) -> None:
        """The device's default stream waits for this lane (the step's results are read there)."""
        if self.stream is not None:
            torch.cuda.default_stream(self.device).wait_stream(self.stream)
