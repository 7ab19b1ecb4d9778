"""Memory sizes as people write them: ``24GiB``, ``512MiB``, ``1.5GB`` or plain bytes."""

from __future__ import annotations

import re

_UNITS = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}


def parse_size(value: str | int) -> int:
    """Bytes from ``value``: an int, or a number with an optional unit (B, KiB, MiB, GiB, TiB
    binary; KB, MB, GB, TB decimal; case-insensitive). Raises ValueError naming the value."""
    if isinstance(value, bool):
        raise ValueError(f"expected a memory size such as 24GiB, 512MiB or a number of bytes, got {value!r}")
    if isinstance(value, int):
        n = value
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
        if m is None or m.group(2).lower() not in _UNITS:
            raise ValueError(f"expected a memory size such as 24GiB, 512MiB or a number of bytes, got {value!r} "
                             f"(units: {', '.join(u for u in ('B', 'KiB', 'MiB', 'GiB', 'TiB', 'KB', 'MB', 'GB', 'TB'))})")
        n = int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    if n <= 0:
        raise ValueError(f"a memory size must be positive, got {value!r}")
    return n


def format_size(n: float) -> str:
    """``n`` bytes in the largest binary unit that keeps the number >= 1 (e.g. ``1.5GiB``)."""
    for unit in ("B", "KiB", "MiB"):
        if abs(n) < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}GiB"
