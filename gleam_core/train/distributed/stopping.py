"""What a rank does when torchrun stops it (SIGTERM) because another rank failed.

The elastic agent notices a dead worker within ``--monitor-interval`` and sends SIGTERM to the
others, often before they have noticed themselves; by default they would die silently and the
job's log would only hold torchrun's summary (rank numbers, no stages). Instead, a rank that
gets SIGTERM keeps going for a short grace period: the next hand-off or collective with the dead
peer fails at once (closed connection) and the rank reports it by rank and stage as usual. If it
has not reported anything when the grace period ends (it does not talk to the dead rank, or it
was stopped for another reason), a watcher thread prints that it was stopped, with every rank's
last status, and exits with 143 (128 + SIGTERM).

The watcher learns of the signal through ``signal.set_wakeup_fd``, so it wakes even while the
main thread is blocked inside a backend call.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable


class StopWatcher:
    """Installs the SIGTERM handling above for this process (call from the main thread).

    Args:
        grace_s: how long the main thread may take to report after SIGTERM.
        describe: returns the text to print if it does not (called in the watcher thread).
    """

    def __init__(self, grace_s: float, describe: Callable[[], str]) -> None:
        self.grace_s, self.describe = grace_s, describe
        self.reporting = threading.Event()   # set by the main thread when it starts a failure report
        self._read, write = os.pipe()
        os.set_blocking(write, False)
        self._previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
        self._previous_fd = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        self._write = write
        threading.Thread(target=self._watch, name="gleam-stop-watcher", daemon=True).start()

    def _watch(self) -> None:
        while True:
            try:
                data = os.read(self._read, 16)
            except OSError:
                return
            if not data:
                return
            if signal.SIGTERM in data:
                break
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline and not self.reporting.is_set():
            time.sleep(0.05)
        if self.reporting.is_set():
            time.sleep(self.grace_s)  # the main thread is reporting and will exit by itself
            os._exit(143)
        try:
            print(self.describe(), file=sys.stderr, flush=True)
        finally:
            os._exit(143)
