"""Test-only fault injection: make one rank crash or hang after a given iteration.

``GLEAM_FAULT="rank=1,iteration=6,mode=exit"`` (comma-separated key=value):
``mode`` is ``exit`` (``os._exit(13)``, no cleanup, like a crash), ``kill`` (SIGKILL to itself),
``hang`` (sleeps forever, like a stuck rank) or ``raise`` (a RuntimeError); ``attempt``
(default 0) is the elastic restart count it fires on (``any`` for every attempt), so a job
restarted by ``torchrun --max-restarts`` runs clean. Never set it outside tests.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass

ENV = "GLEAM_FAULT"
MODES = ("exit", "kill", "hang", "raise")


@dataclass(frozen=True)
class Fault:
    rank: int
    iteration: int
    mode: str
    attempt: int | None = 0     # None: every attempt


def parse_fault(text: str | None) -> Fault | None:
    """The fault a ``GLEAM_FAULT`` value describes (None for unset/empty)."""
    if not text:
        return None
    try:
        fields = dict(part.split("=", 1) for part in text.split(",") if part.strip())
        mode = fields.get("mode", "exit")
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} (allowed: {', '.join(MODES)})")
        attempt = fields.get("attempt", "0")
        return Fault(int(fields["rank"]), int(fields["iteration"]), mode, None if attempt == "any" else int(attempt))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{ENV}={text!r} is malformed ({exc}); expected e.g. 'rank=1,iteration=6,mode=exit'") from exc


def maybe_inject(fault: Fault | None, rank: int, iteration: int, attempt: int, who: str) -> None:
    """Triggers ``fault`` if it is for this rank, iteration and attempt."""
    if fault is None or fault.rank != rank or fault.iteration != iteration:
        return
    if fault.attempt is not None and fault.attempt != attempt:
        return
    print(f"gleam-train: {who}: injected fault '{fault.mode}' after iteration {iteration} ({ENV})",
          file=sys.stderr, flush=True)
    if fault.mode == "exit":
        os._exit(13)
    if fault.mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault.mode == "hang":
        while True:
            time.sleep(3600)
    raise RuntimeError(f"injected fault after iteration {iteration} ({ENV})")
