"""The distributed training loop: GLEAM modules pipelined over stages, replicated for data
parallelism, with the single-process trainer's run directory, records and checkpoints.

Every rank builds the data, the streams and the whole network exactly as the single-process
:class:`~gleam_core.train.trainer.Trainer` does (same seed, same order), so initial weights and
batches agree without communication; then it keeps only its stage's modules
(:class:`.stage.Stage`). Per iteration each rank loads its replica's batch, takes the previous
stage's hand-off, trains its modules and sends on; stages run concurrently, bounded by the
hand-off queues. Rank 0 (stage 0, replica 0) owns the run directory: it alone writes the spec,
the records (train records gathered from all ranks through the store, see
:mod:`.reporting`), figures and checkpoints, and shows the progress bar.

Synchronization points (all ranks, in the same order, after the same iteration): validation
(the validation batches flow through the pipeline, replicas share them; the last stages'
sums are gathered to rank 0), checkpoints (replica 0 of each stage sends its modules' weights
and optimizer states to rank 0, which writes ONE checkpoint in the single-process format, so
``--resume`` with any layout or none, and ``gleam-eval``, read it) and the end of training.
"""

from __future__ import annotations

import math
import os
from collections import deque
from pathlib import Path
from typing import TextIO

import torch
import torch.distributed as dist
from tqdm import tqdm

from ...data import collate
from ..checkpoints import check_losses_finite, latest_checkpoint, rng_state, save_checkpoint
from ..evaluation import add_batch_metrics, batch_problem, psnr_convention
from ..figures import comparison, save_png
from ..records import MetricsLog
from ..schema import to_dict
from ..spec import Spec, SpecError
from ...sizes import format_size
from ..trainer import Trainer
from .data import ShardedBatchStream
from .faults import ENV as FAULT_ENV
from .faults import maybe_inject, parse_fault
from .handoff import PeerFailure, failure_kind
from .reporting import StatsBoard, Status, combine
from .stage import Stage
from .world import World, restart_count


class SharedError(RuntimeError):
    """An error every rank shares (found by rank 0 and broadcast), e.g. a run directory that
    already holds a run; ``spec`` marks spec problems (exit status 2)."""

    def __init__(self, message: str, spec: bool) -> None:
        super().__init__(message)
        self.spec = spec


class CollectiveFailure(RuntimeError):
    """A synchronization point (validation, checkpoint, end) failed or timed out."""

    def __init__(self, message: str, hang: bool) -> None:
        super().__init__(message)
        self.hang = hang


class DistributedTrainer(Trainer):
    """Builds this rank's part of a distributed GLEAM run; :meth:`run` trains it.

    The single-process :class:`~gleam_core.train.trainer.Trainer`'s setup, with this rank's
    device, its replica's shard of the batches, its pipeline stage as the strategy, rank 0's
    records and collective run-directory checks.

    Args:
        spec: a validated spec with ``strategy: gleam``.
        world: this rank's :class:`~.world.World` (process groups initialized).
        resume: continue from the run directory's latest checkpoint. Under an elastic restart
            (``TORCHELASTIC_RESTART_COUNT`` > 0) a run with a checkpoint resumes by itself.
        out: where rank 0 prints notices and the final summary (default: sys.stdout).
    """

    def __init__(self, spec: Spec, world: World, resume: bool = False, out: TextIO | None = None) -> None:
        self.world = world
        self.rank0 = world.rank == 0
        self.status = Status(world)
        self.status.set("starting")
        self.restarted_fresh = False
        self.board = StatsBoard(world)
        self._pending: deque[int] = deque()
        self.last_record: dict | None = None
        self._waited = 0.0
        super().__init__(spec, resume, out)
        self.fault = parse_fault(os.environ.get(FAULT_ENV))

    @property
    def stage(self) -> Stage:
        """This rank's pipeline stage (its strategy)."""
        return self.strategy  # type: ignore[return-value]

    def _main_device(self) -> torch.device:
        return self.world.device

    def _batch_stream(self) -> ShardedBatchStream:
        d, w = self.spec.data, self.world
        return ShardedBatchStream(self.train_set, d.batch_size, collate, self.spec.seed, d.shuffle, d.num_workers,
                                  pin_memory=self.device.type == "cuda", replica=w.replica, replicas=w.layout.replicas)

    def _build_strategy(self) -> Stage:
        if self.spec.model.type == "varnet":  # hand-offs carry image-shaped states; a varnet's is k-space + maps
            raise SpecError("model.type", "varnet is not supported by multi-process (torchrun) training; train it in "
                                          "one process (strategy gleam with gleam.devices for several GPUs)")
        return Stage(self.world, self.model, self.spec, self.loss_fn, self.total, self.status)

    def _saved_rng(self, state: dict) -> dict:
        per_rank = state.get("distributed", {}).get("rng")
        return per_rank[self.world.rank] if per_rank is not None and len(per_rank) == self.world.size \
            else state["rng"]

    def _open_log(self, state: dict | None) -> MetricsLog | None:
        if not self.rank0:
            return None
        resume_from = self.iteration if state is not None else (0 if self.restarted_fresh else None)
        return MetricsLog(self.run_dir, self.spec.logging, resume_from=resume_from)

    # ---- setup -----------------------------------------------------------------------------

    def _open_run_dir(self, resume: bool) -> dict | None:
        """Rank 0 checks/creates the run directory and reads the checkpoint; all ranks get it."""
        result: tuple = ("ok", None, False)
        if self.rank0:
            try:
                attempt = restart_count()
                auto = not resume and attempt > 0 and latest_checkpoint(self.run_dir) is not None
                if auto:
                    print(f"elastic restart {attempt}: resuming from the latest checkpoint", file=self.out)
                # The single-process rules, verbatim (same checks, same messages).
                state = super()._open_run_dir(resume or auto)
                result = ("ok", state, attempt > 0 and state is None)
            except (ValueError, RuntimeError, OSError) as exc:
                result = ("error", str(exc), isinstance(exc, ValueError))
        box = [result]
        dist.broadcast_object_list(box, src=0, group=self.world.control)
        if box[0][0] == "error":
            raise SharedError(box[0][1], box[0][2])
        self.restarted_fresh = box[0][2]
        return box[0][1]

    # ---- synchronization points ------------------------------------------------------------

    def _collective(self, what: str, fn):
        """Runs a control-group collective after a monitored barrier; failures name the ranks."""
        self.status.set(what)
        try:
            dist.monitored_barrier(group=self.world.control, timeout=self.world.timeout(), wait_all_ranks=True)
            return fn()
        except PeerFailure:
            raise
        except Exception as exc:  # noqa: BLE001 (backend errors)
            cause, hang = failure_kind(exc)
            raise CollectiveFailure(f"{self.world.describe()}: {what} after iteration {self.iteration} failed: "
                                    f"{cause}. Backend message: {str(exc).strip()}", hang) from exc

    def _gather(self, obj, what: str) -> list | None:
        out = [None] * self.world.size if self.rank0 else None

        def run():
            dist.gather_object(obj, out, dst=0, group=self.world.control)
            return out
        return self._collective(what, run)

    def _broadcast(self, obj, what: str):
        box = [obj]

        def run():
            dist.broadcast_object_list(box, src=0, group=self.world.control)
            return box[0]
        return self._collective(what, run)

    # ---- records ---------------------------------------------------------------------------

    def _post_stats(self, stats: dict) -> None:
        w = self.world
        record = {"rank": w.rank, "stage": w.stage, "replica": w.replica, "modules": self.stage.modules,
                  "loss": stats["loss"], "time_s": stats["time_s"], "peak_bytes": stats["peak_bytes"],
                  "module_peak_bytes": stats.get("module_peak_bytes"), "lr": self.stage.lrs(),
                  "step_s": stats["step_time_s"], "wait_s": stats["wait_s"], "epoch": self.stream.epoch}
        self.board.post(self.iteration, record)
        if self.rank0:
            self._pending.append(self.iteration)

    def _write_records(self, block: bool) -> None:
        """Rank 0: writes the train records whose statistics have all arrived (all, if ``block``)."""
        while self._pending:
            records = self.board.collect(self._pending[0], block=block)
            if records is None:
                return
            it = self._pending.popleft()
            self.last_record = combine(records, self.world)
            self.log.write("train", it, self.last_record)

    # ---- validation and checkpoints --------------------------------------------------------

    def _val_batches(self):
        """This replica's validation batches: global batch v goes to replica v % R."""
        cfg, limit = self.spec.data, self.spec.schedule.val_batches
        n, bs = len(self.val_set), cfg.val_batch_size
        count = math.ceil(n / bs) if limit is None else min(limit, math.ceil(n / bs))
        mine = [v for v in range(count) if v % self.world.layout.replicas == self.world.replica]
        chunks = [list(range(v * bs, min((v + 1) * bs, n))) for v in mine]
        loader = torch.utils.data.DataLoader(self.val_set, batch_sampler=chunks, collate_fn=collate,
                                             num_workers=cfg.num_workers)
        return zip(mine, loader)

    @torch.no_grad()
    def validate(self) -> dict:
        """Validation through the pipeline; the metrics (as the single-process trainer's) reach
        every rank; rank 0 writes the record and the figure."""
        self.status.set("validation")
        sums: dict[str, float] = {}
        count, figure = 0, None
        for v, batch in self._val_batches():
            problem, target = batch_problem(batch, self.spec.data.kind, self.device)
            recon = self.stage.infer(problem)
            if recon is None:
                continue
            count += add_batch_metrics(sums, recon, problem, target, self.loss_fn)
            if v == 0 and self.spec.logging.images:
                figure = comparison(problem.ahy[0], recon[0], target[0])
        parts = self._gather((sums, count, figure) if self.world.last else None, "validation")
        result = None
        if self.rank0:
            total_sums: dict[str, float] = {}
            total = 0
            for part in parts:
                if part is None:
                    continue
                for k, t in part[0].items():
                    total_sums[k] = total_sums.get(k, 0.0) + t
                total += part[1]
                figure = part[2] if part[2] is not None else figure
            result = {k: t / total for k, t in total_sums.items()}
            self._write_records(block=True)
            self.log.write("val", self.iteration, result)
            if figure is not None:
                save_png(figure, self.run_dir / "figures" / f"val_{self.iteration:08d}.png")
                self.log.image("val/comparison", figure, self.iteration)
        self.last_val = self._broadcast(result, "validation results")
        self.status.set("computing")
        return self.last_val

    def save(self) -> Path | None:
        """One consistent checkpoint of iteration ``self.iteration`` (all stages there), written
        by rank 0 in the single-process format; returns its path on rank 0. Each rank first
        checks its steps not yet read back: a NaN stops the job before anything is written."""
        self._settle()
        mine = None
        if self.world.replica == 0:
            mine = {"modules": self.stage.module_states(), "updaters": self.stage.updater_states()}
        parts = self._gather((mine, rng_state()), "the checkpoint")
        path = None
        if self.rank0:
            modules, updaters = {}, {}
            for part, _ in parts:
                if part is not None:
                    modules.update(part["modules"])
                    updaters.update(part["updaters"])
            chains = self.model.split(self.spec.gleam.modules)
            for m, sd in modules.items():
                chains[m].load_state_dict(sd)
            layout = self.world.layout
            strategy_state = {"updaters": [updaters[m] for m in range(layout.modules)]}
            payload = {"model": self.model.state_dict(), "model_description": self.model.description(),
                       "strategy": "gleam", "strategy_state": strategy_state,
                       "data_state": self.stream.state_dict(), "rng": parts[0][1], "spec": to_dict(self.spec),
                       "last_val": self.last_val,
                       "distributed": {"stages": layout.stages, "replicas": layout.replicas,
                                       "rng": [p[1] for p in parts]}}
            path = save_checkpoint(self.run_dir, self.iteration, payload, self.spec.schedule.keep_last)
        self.saved_iteration = self.iteration
        self.status.set("computing")
        return path

    # ---- training --------------------------------------------------------------------------

    def _check_finite(self, losses: list[float], iteration: int) -> None:
        check_losses_finite(losses, self.stage.modules, iteration, self.saved_iteration, self.run_dir,
                            where=self.world.describe())

    def _interval(self, steps: int, seconds: float) -> dict:
        """Wall time and hand-off wait per iteration over the interval."""
        # The clock (and so self._waited) restarts right after each interval is read.
        return {"step_time_s": seconds / steps, "wait_s": (self.stage.wait_s() - self._waited) / steps}

    def _restart_clock(self) -> None:
        super()._restart_clock()
        self._waited = self.stage.wait_s()

    def _train_one(self) -> None:
        """Loads this replica's next batch and issues this stage's modules on it."""
        self.status.set("computing", self.iteration + 1)
        super()._train_one()
        if self.fault is not None:  # test-only: the status table must show where the fault struck
            self.status.set("computing", self.iteration, force=True)
            maybe_inject(self.fault, self.world.rank, self.iteration, restart_count(), self.world.describe())

    def _postfix(self, stats: dict) -> str:
        """Progress-bar text: rank 0's modules' losses now, the others' from the last record."""
        rec = self.last_record
        losses: list = list(rec["loss"]) if rec is not None else [None] * self.world.layout.modules
        for m, v in zip(self.stage.modules, stats["loss"]):
            losses[m] = v
        text = " ".join(f"l{m}={v:.4g}" for m, v in enumerate(losses) if v is not None)
        return text + f" mem={format_size(max(stats['peak_bytes'], rec['peak_bytes'] if rec else 0))}"

    def finish(self) -> None:
        """End of training: every hand-off taken, every record written, all ranks here."""
        self.status.set("finishing")
        self.stage.drain()
        if self.rank0:
            self._write_records(block=True)
        self._collective("the end of training", lambda: None)
        self.status.set("done")

    def run(self) -> dict:
        """Trains to the end of the schedule; returns the final validation metrics (every rank)."""
        spec, s, w = self.spec, self.spec.schedule, self.world
        if self.rank0:
            print(f"distributed: {w.size} ranks = {w.layout.stages} stages x {w.layout.replicas} replicas, "
                  f"backend {w.backend}, queue depth {spec.gleam.queue_depth}\n{w.layout.table()}",
                  file=self.out)
        bar = tqdm(total=self.total, initial=self.iteration, disable=not (self.rank0 and spec.logging.progress),
                   unit="it", dynamic_ncols=True, desc=f"gleam {w.layout.stages}x{w.layout.replicas}")
        try:
            self._restart_clock()
            while self.iteration < self.total:
                self._train_one()
                it = self.iteration
                if it % spec.logging.every == 0 or it == self.total:
                    stats = self._settle()
                    self._post_stats(stats)
                    if self.rank0:
                        bar.set_postfix_str(self._postfix(stats), refresh=False)
                if self.rank0:
                    self._write_records(block=False)
                    bar.update(1)
                if it % s.val_every == 0 or it == self.total:
                    self._settle()
                    val = self.validate()
                    if self.rank0:
                        bar.write(f"[{it}] val loss {val['loss']:.4g}  PSNR ({psnr_convention(spec.data.kind)}) "
                                  f"{val['psnr']:.2f} dB "
                                  f"(zero-filled {val['psnr_zf']:.2f})  SSIM {val['ssim']:.4f} "
                                  f"(zero-filled {val['ssim_zf']:.4f})")
                if it % s.checkpoint_every == 0 or it == self.total:
                    self.save()
                if it % s.val_every == 0 or it % s.checkpoint_every == 0:
                    self._restart_clock()
            self.finish()
        finally:
            bar.close()
            if self.log is not None:
                self.log.close()
        val = self.last_val if self.last_val is not None else self.validate()
        if self.rank0:
            print(f"final validation (gleam, {self.total} iterations): "
                  f"PSNR ({psnr_convention(self.spec.data.kind)}) {val['psnr']:.2f} dB vs zero-filled "
                  f"{val['psnr_zf']:.2f} dB ({val['psnr'] - val['psnr_zf']:+.2f} dB); SSIM {val['ssim']:.4f} vs "
                  f"{val['ssim_zf']:.4f}; NRMSE {val['nrmse']:.4f} vs {val['nrmse_zf']:.4f}", file=self.out)
        return val

    def checkpoint_note(self) -> str:
        """Where the last consistent checkpoint is (for failure messages)."""
        latest = latest_checkpoint(self.run_dir)
        if latest is None:
            return "no checkpoint was written yet; start again"
        return (f"the last consistent checkpoint is {latest} (untouched); continue with --resume (under "
                "torchrun --max-restarts the restarted job resumes from it by itself)")
