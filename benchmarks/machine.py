"""What the benchmark tables name as the machine, the device sync the timings use, and how a
table is reported (shared by the benchmark scripts)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from gleam_core.atomic import atomic_write_text


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def sync(device: "str | torch.device") -> None:
    """Waits for the device's queued work (CUDA), so a timer reads finished work; nothing on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def report(lines: list[str], out: "str | None") -> None:
    """Prints a markdown table's lines and, with ``out``, writes them there atomically."""
    text = "\n".join(lines) + "\n"
    if out:
        atomic_write_text(Path(out), text)
    print(text)
