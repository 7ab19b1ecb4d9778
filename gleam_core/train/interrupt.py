"""Ctrl-C during training: the first SIGINT asks the loop to stop at the next step boundary
(where model, optimizers and data position agree, so a checkpoint can be written); a second
one interrupts at once."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TextIO


class DeferredInterrupt:
    """``with DeferredInterrupt() as stop: ... if stop.requested: ...``. Only takes over SIGINT in
    the main thread and when Python's default handler is installed (never replaces a handler
    the embedding program set); otherwise ``requested`` stays False and Ctrl-C behaves as usual."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.requested = False
        self._previous = None

    def __enter__(self) -> DeferredInterrupt:
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: stopping after this step to save a checkpoint (Ctrl-C again to stop at once)",
              file=self.out, flush=True)

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
