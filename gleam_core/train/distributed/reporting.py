"""What ranks tell rank 0 without stopping the pipeline: per-iteration statistics and status.

Both go through the job's key-value store (torchrun's TCP store, under a prefix per elastic
restart), so a stage never waits for rank 0 to log:

- :class:`StatsBoard`: at logging iterations every rank posts its record (losses, times,
  memory of its modules, its step and wait time); rank 0 combines the records of an iteration
  once all have arrived (:func:`combine`) and writes one line, as the single-process trainer does.
- :class:`Status`: each rank's current phase ("computing", "waiting for hand-off 7 from
  rank 0 (stage 0, replica 0)", ...) and when it started, read back by
  :func:`describe_ranks` when something fails, to say which rank stopped where.
"""

from __future__ import annotations

import json
import time

from .world import World


class Status:
    """This rank's phase in the store (best effort: store errors are ignored).

    A write costs a round trip to the store, so a repeated phase (``computing`` in every
    iteration) is written at most every ``MIN_INTERVAL_S``; a new phase at once. The hand-off
    endpoints report ``waiting for ...`` only when a wait actually blocks.
    """

    MIN_INTERVAL_S = 1.0

    def __init__(self, world: World) -> None:
        self.world = world
        self.iteration = 0
        self._key = f"status/{world.rank}"
        self._phase: str | None = None
        self._written = 0.0

    def set(self, phase: str, iteration: int | None = None, force: bool = False) -> None:
        if iteration is not None:
            self.iteration = iteration
        now = time.time()
        if not force and phase == self._phase and now - self._written < self.MIN_INTERVAL_S:
            return
        self._phase, self._written = phase, now
        try:
            self.world.store.set(self._key, json.dumps({"iteration": self.iteration, "phase": phase, "since": now}))
        except Exception:  # noqa: BLE001 (diagnostics only)
            pass

    def waiting(self, what: str | None) -> None:
        """Hook for the hand-off endpoints: ``what`` while blocked, None when done."""
        self.set(what if what is not None else "computing")


def describe_ranks(world: World) -> str:
    """One line per rank: its last reported phase, iteration and for how long (best effort)."""
    lines, seen = [], {}
    now = time.time()
    for r in range(world.size):
        key = f"status/{r}"
        try:
            if not world.store.check([key]):
                lines.append(f"  {world.describe(r)}: no status reported")
                continue
            s = json.loads(world.store.get(key))
            seen[r] = s["iteration"]
            lines.append(f"  {world.describe(r)}: in iteration {s['iteration']}, {s['phase']} "
                         f"(for {now - s['since']:.1f} s)")
        except Exception:  # noqa: BLE001 (the store may be gone with the job)
            return ""
    if seen and len(set(seen.values())) > 1:
        low = min(seen.values())
        lines.append("  furthest behind: " + ", ".join(world.describe(r) for r, it in seen.items() if it == low))
    return "rank status (last reported):\n" + "\n".join(lines)


class StatsBoard:
    """Per-iteration records of all ranks, collected by rank 0."""

    def __init__(self, world: World) -> None:
        self.world = world

    def _key(self, iteration: int, rank: int) -> str:
        return f"stats/{iteration}/{rank}"

    def post(self, iteration: int, record: dict) -> None:
        self.world.store.set(self._key(iteration, self.world.rank), json.dumps(record))

    def ready(self, iteration: int) -> bool:
        return self.world.store.check([self._key(iteration, r) for r in range(self.world.size)])

    def collect(self, iteration: int, block: bool = False) -> list[dict] | None:
        """The records of ``iteration`` (rank order), or None if not all have arrived and not
        ``block``; blocking waits at most the world's timeout."""
        deadline = time.perf_counter() + self.world.timeout_s
        while not self.ready(iteration):
            if not block:
                return None
            if time.perf_counter() > deadline:
                missing = [r for r in range(self.world.size) if not self.world.store.check([self._key(iteration, r)])]
                raise TimeoutError(f"no statistics for iteration {iteration} from "
                                   f"{', '.join(self.world.describe(r) for r in missing)} within "
                                   f"distributed.timeout_s={self.world.timeout_s:g}")
            time.sleep(0.002)
        keys = [self._key(iteration, r) for r in range(self.world.size)]
        records = [json.loads(v) for v in self.world.store.multi_get(keys)]
        for key in keys:
            self.world.store.delete_key(key)
        return records


def combine(records: list[dict], world: World) -> dict:
    """One train record from every rank's record of an iteration.

    Per module (global order): ``loss`` and ``time_s`` averaged over replicas, ``lr`` of replica 0,
    ``module_peak_bytes`` the max over replicas (CPU only). ``peak_bytes``: max over ranks.
    ``step_time_s``: rank 0's wall time per iteration over the logging interval. Per stage:
    ``stage_step_s`` (time per iteration) and ``stage_wait_s`` (of which blocked on hand-offs
    and credits), over the interval,
    averaged over replicas.
    """
    layout = world.layout
    m_total, s_total, reps = layout.modules, layout.stages, layout.replicas
    loss, times, lr = [0.0] * m_total, [0.0] * m_total, [0.0] * m_total
    mem: list[int] | None = [0] * m_total
    stage_step, stage_wait = [0.0] * s_total, [0.0] * s_total
    for rec in records:
        for i, m in enumerate(rec["modules"]):
            loss[m] += rec["loss"][i] / reps
            times[m] += rec["time_s"][i] / reps
            if rec["replica"] == 0:
                lr[m] = rec["lr"][i]
            if mem is not None and rec.get("module_peak_bytes") is not None:
                mem[m] = max(mem[m], rec["module_peak_bytes"][i])
            else:
                mem = None
        stage_step[rec["stage"]] += rec["step_s"] / reps
        stage_wait[rec["stage"]] += rec["wait_s"] / reps
    out = {"loss": loss, "time_s": times, "peak_bytes": max(r["peak_bytes"] for r in records)}
    if mem is not None:
        out["module_peak_bytes"] = mem
    out.update({"step_time_s": records[0]["step_s"], "lr": lr, "epoch": records[0]["epoch"],
                "stage_step_s": stage_step, "stage_wait_s": stage_wait})
    return out
