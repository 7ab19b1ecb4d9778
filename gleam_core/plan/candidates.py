"""The configurations a planner weighs for one spec: e2e; checkpoint with each segment size that
divides the unrolls (1 .. U/2 unrolls per segment); invertible; gleam with each module count
M > 1 that divides the unrolls."""

from __future__ import annotations

from dataclasses import dataclass

# The precision dimension of the candidate space. Each plan weighs the spec's own ``precision``
# (the denoisers' compute dtype; invertible is fp32-only, a spec rule). To let the planner also
# weigh other precisions, list them here and loop candidates_of over them: estimate and timing
# already follow Candidate.precision through the spec.
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Candidate:
    """One way to train: ``segments`` is checkpoint's ``checkpoint.segment`` (unrolls per
    checkpointed segment), ``modules`` GLEAM's ``gleam.modules``."""

    strategy: str
    modules: int | None = None
    segments: int | None = None
    precision: str = "fp32"

    def overrides(self) -> list[str]:
        """The ``--set`` assignments that select this candidate in gleam-train."""
        sets = [f"strategy={self.strategy}"]
        if self.segments is not None:
            sets.append(f"checkpoint.segment={self.segments}")
        if self.modules is not None:
            sets.append(f"gleam.modules={self.modules}")
        return sets

    def label(self) -> str:
        if self.strategy == "checkpoint":
            return f"checkpoint (segment {self.segments})"
        if self.strategy == "gleam":
            return f"gleam ({self.modules} modules)"
        return self.strategy


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def candidates_of(unrolls: int, precision: str = "fp32") -> list[Candidate]:
    """Every candidate for a network of ``unrolls`` unrolls in ``precision``, in the planner's
    order of preference at equal speed (exact end-to-end gradients first)."""
    if unrolls < 1:
        raise ValueError(f"unrolls must be >= 1, got {unrolls!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    out = [Candidate("e2e", precision=precision)]
    out += [Candidate("checkpoint", segments=s, precision=precision) for s in divisors(unrolls) if s < unrolls]
    if precision == "fp32":  # the inverses need full precision (spec rule)
        out += [Candidate("invertible", precision=precision)]
    out += [Candidate("gleam", modules=m, precision=precision) for m in divisors(unrolls) if m > 1]
    return out
