"""Step and module timings that never synchronize the host inside a step.

On the CPU an interval is wall-clock time; on CUDA it is the time between two events recorded
on a stream, read only when :meth:`Stopwatch.seconds` is called, at a logging interval: it
synchronizes only on an event that has not completed yet, so a caller that synchronized the
device once (``resolve_steps``) reads a whole interval's timings without another wait.
"""

from __future__ import annotations

import time

import torch


class Stopwatch:
    """Accumulates one or more intervals on ``device`` (and ``stream`` on CUDA).

    ``with watch: ...`` adds an interval; :meth:`seconds` returns their total.
    """

    def __init__(self, device: torch.device, stream: "torch.cuda.Stream | None" = None) -> None:
        device = torch.device(device)
        self.cuda = device.type == "cuda"
        # Default: the current stream of ``device`` itself, not of whichever device is current.
        self.stream = stream if stream is not None or not self.cuda else torch.cuda.current_stream(device)
        self._cpu = 0.0
        self._t0 = 0.0
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def __enter__(self) -> "Stopwatch":
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
            self._events.append((start, torch.cuda.Event(enable_timing=True)))
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self._events[-1][1].record(self.stream)
        else:
            self._cpu += time.perf_counter() - self._t0

    def seconds(self) -> float:
        if not self.cuda:
            return self._cpu
        total = 0.0
        for start, end in self._events:
            if not end.query():
                end.synchronize()
            total += start.elapsed_time(end) / 1000.0
        return total
