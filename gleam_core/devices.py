"""Device names from specs and command lines (``cpu``, ``cuda``, ``cuda:N``), checked to exist."""

from __future__ import annotations

import torch


def parse_device(name: str, key: str) -> torch.device:
    """A torch.device from a spec string, checked to exist; ``key`` names the spec entry in errors."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{key}: {name!r} is not a device (allowed: cpu, cuda, cuda:N)") from exc
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{key}: device type {device.type!r} is not supported (allowed: cpu, cuda, cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"{key}: {name!r} requested but no CUDA device is available")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise RuntimeError(f"{key}: {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        device = torch.device("cuda", index)
    return device
