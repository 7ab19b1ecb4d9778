"""``gleam-train`` under ``torchrun``: spec checks, process groups, the distributed trainer, and
failure reports that name the rank and stage.

Exit status as single-process ``gleam-train``: 0 done, 1 training failed (a rank died or hung,
the loss diverged), 2 bad spec or run directory, 130 interrupted. After a failure the process
leaves at once (``os._exit``) instead of tearing down process groups whose peers are gone.
"""

from __future__ import annotations

import os
import sys

from ..schema import SpecError
from ..spec import Spec, load_spec
from .world import World, init_world, launched, layout_from_env, shutdown

__all__ = ["launched", "main", "check_launch"]


def check_launch(spec: Spec) -> None:
    """Spec rules of a distributed launch that do not depend on the world size."""
    if spec.strategy != "gleam":
        raise SpecError("strategy", f"got {spec.strategy!r}; distributed runs (torchrun) train with 'gleam' only "
                                    "(gleam.modules: 1 with distributed.stages: 1 is data-parallel end-to-end "
                                    "training)")
    if spec.gleam.devices is not None:
        raise SpecError("gleam.devices", f"got {spec.gleam.devices!r}; under torchrun every rank uses one device "
                                         "(device: cuda gives rank r the GPU LOCAL_RANK); leave gleam.devices null")


def _say(message: str, world: World | None = None, rank: int | None = None) -> None:
    prefix = "gleam-train" if world is None or world.size == 1 else f"gleam-train [{world.describe()}]"
    if world is None and rank is not None:
        prefix = f"gleam-train [rank {rank}]"
    print(f"{prefix}: {message}", file=sys.stderr, flush=True)


def main(spec_path: str, overrides: list[str], resume: bool) -> int:
    """Runs this rank of a distributed job; returns (or exits with) the exit status."""
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    try:
        spec = load_spec(spec_path, overrides)
        check_launch(spec)
        layout, rank, local_rank = layout_from_env(spec.distributed, spec.gleam.modules)
        world = init_world(layout, rank, local_rank, spec.device, spec.distributed)
    except (ValueError, RuntimeError, OSError) as exc:  # SpecError is a ValueError
        if local_rank == 0:  # the same message on every rank: once per machine
            _say(str(exc), rank=rank)
        return 2
    from ..checkpoints import TrainingDiverged
    from .reporting import describe_ranks
    from .stopping import StopWatcher
    from .trainer import CollectiveFailure, DistributedTrainer, SharedError

    trainer = None

    def stopped() -> str:
        where = f"after iteration {trainer.iteration}" if trainer is not None else "while starting"
        ranks = describe_ranks(world)
        return (f"gleam-train [{world.describe()}]: stopped by the launcher (SIGTERM) {where}: another rank "
                "failed (see its message above and torchrun's summary)." + (f"\n{ranks}" if ranks else ""))
    watcher = StopWatcher(min(10.0, spec.distributed.timeout_s), stopped) if world.size > 1 else None
    try:
        try:
            trainer = DistributedTrainer(spec, world, resume=resume)
            trainer.run()
        except BaseException:
            if watcher is not None:
                watcher.reporting.set()  # a report is coming: the SIGTERM watcher lets it finish
            raise
    except SharedError as exc:
        if world.rank == 0:
            _say(str(exc), world)
        return _leave(world, 2 if exc.spec else 1)
    except SpecError as exc:
        _say(str(exc), world)
        return _leave(world, 2)
    except TrainingDiverged as exc:
        _say(str(exc), world)
        return _leave(world, 1)
    except KeyboardInterrupt:
        note = trainer.checkpoint_note() if trainer is not None else "no checkpoint was written yet"
        if world.rank == 0:
            _say(f"interrupted; {note}", world)
        return _leave(world, 130)
    except Exception as exc:  # noqa: BLE001 (PeerFailure, CollectiveFailure, backend and other errors)
        from .handoff import PeerFailure
        where = f"after iteration {trainer.iteration}" if trainer is not None else "while starting"
        if isinstance(exc, (PeerFailure, CollectiveFailure)):
            text = str(exc)
        else:
            text = f"{world.describe()} failed: {type(exc).__name__}: {exc}"
        note = trainer.checkpoint_note() if trainer is not None else "no checkpoint was written yet"
        if trainer is not None:  # what the other ranks' reports will show for this one
            trainer.status.set("stopped: " + text.split(": ", 1)[-1].split(". Backend message")[0][:160])
        ranks = describe_ranks(world)
        _say(f"{text}\n  stopped {where}; {note}." + (f"\n{ranks}" if ranks else ""), world)
        if not isinstance(exc, (PeerFailure, CollectiveFailure)):
            import traceback
            traceback.print_exc()
        return _leave(world, 1)
    if world.rank == 0:
        print(f"run directory: {trainer.run_dir}", flush=True)
    shutdown(world)
    return 0


def _leave(world: World, code: int) -> int:
    """Leaves after a failure without waiting for peers that may be gone."""
    sys.stdout.flush()
    sys.stderr.flush()
    if world.size > 1:
        os._exit(code)
    shutdown(world)
    return code


