"""The training loop behind ``gleam-train``: data, model, strategy, validation, logging and
checkpoints, driven by a validated :class:`~gleam_core.train.spec.Spec`.

A run directory holds ``spec.yaml`` (the resolved spec), ``checkpoints/``, the metric records
(``metrics.jsonl`` or ``train.csv``/``val.csv``), ``tensorboard/`` and ``figures/`` (one PNG per
validation). ``--resume`` continues from the latest checkpoint and ends with the same weights as
an uninterrupted run.
"""

from __future__ import annotations

import math

import sys
import time
from pathlib import Path
from typing import TextIO

import torch
from tqdm import tqdm

from ..data import collate
from ..models import InverseOptions, UnrolledNet
from ..atomic import atomic_write_text
from .batches import BatchStream
from .checkpoints import (check_losses_finite, latest_checkpoint, load_checkpoint, rng_state,
                          save_checkpoint, set_rng_state)
from .datasets import build_dataset, val_loader
from .evaluation import add_batch_metrics, batch_problem, psnr_convention
from .figures import comparison, save_png
from .interrupt import DeferredInterrupt
from .losses import get_loss
from .records import MetricsLog
from .schema import SpecError, to_dict
from .spec import COMPUTE_DTYPES, Spec, parse_spec, spec_to_yaml
from .strategies import STRATEGIES, StepResult, Strategy, parse_device, resolve_steps


def build_strategy(spec: Spec, model: UnrolledNet, total: int, device: torch.device) -> Strategy:
    """The strategy named by ``spec.strategy`` with its options section."""
    cls, loss = STRATEGIES[spec.strategy], get_loss(spec.loss)
    options: dict = {"scale_grads": True} if spec.precision == "fp16" else {}
    if spec.strategy == "checkpoint":
        options["segment"] = spec.checkpoint.segment
    elif spec.strategy == "invertible":
        options.update(options=InverseOptions(spec.invertible.iters, spec.invertible.tol),
                       anchor_every=spec.invertible.anchor_every)  # fp32 only (check_spec)
    elif spec.strategy == "gleam":
        options.update(modules=spec.gleam.modules, devices=spec.gleam.devices, overlap=spec.gleam.overlap,
                       queue_depth=spec.gleam.queue_depth)
    return cls(model, loss, spec.optimizer, total, device, **options)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}GiB"


class Trainer:
    """Builds everything a spec describes; :meth:`run` trains and returns the final validation.

    The distributed trainer (:class:`~gleam_core.train.distributed.trainer.DistributedTrainer`)
    is this class with other devices, batches, strategy (a pipeline stage), records and
    synchronization points (the ``_`` methods it overrides); the setup sequence is this one, so
    both build identical weights and batches.

    Args:
        spec: a validated spec.
        resume: continue from the latest checkpoint in ``spec.output`` (which must exist).
        out: where the final summary and notices go (default: sys.stdout at construction; the
            progress bar writes to stderr).
    """

    def __init__(self, spec: Spec, resume: bool = False, out: TextIO | None = None) -> None:
        self.spec, self.out = spec, out if out is not None else sys.stdout
        self.run_dir = Path(spec.output)
        self.device = self._main_device()
        if spec.threads is not None:
            torch.set_num_threads(spec.threads)
        state = self._open_run_dir(resume)
        torch.manual_seed(spec.seed)
        kind = spec.data.kind
        self.train_set = build_dataset(spec.data.train, kind, spec.masks, spec.seed, train=True,
                                       key="data.train")
        self.val_set = build_dataset(spec.data.val, kind, spec.masks, spec.seed, train=False, key="data.val")
        self.stream = self._batch_stream()
        s = spec.schedule
        self.total = s.iterations if s.iterations is not None else s.epochs * self.stream.batches_per_epoch
        map_sets = int(self.train_set[0]["maps"].shape[1])
        share_groups = spec.gleam.modules if spec.strategy == "gleam" else 1
        self.model = UnrolledNet(spec.model, kind, map_sets, share_groups)
        self.model.set_compute_dtype(COMPUTE_DTYPES[spec.precision])
        self.loss_fn = get_loss(spec.loss)
        self.strategy = self._build_strategy()
        self.iteration = 0
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.strategy.load_state_dict(state["strategy_state"])
            self.stream.load_state_dict(state["data_state"])
            set_rng_state(self._saved_rng(state))
            self.iteration = state["iteration"]
        self.saved_iteration = self.iteration if state is not None else None
        self.last_val: dict | None = state.get("last_val") if state is not None else None
        self.best: dict | None = state.get("best") if state is not None else None
        self.log = self._open_log(state)
        self._unresolved: list[tuple[int, StepResult]] = []  # (iteration, step) not read back yet
        self.last_stats: dict | None = None
        self._clock = time.perf_counter()

    # ---- setup (what the distributed trainer replaces) -------------------------------------

    def _main_device(self) -> torch.device:
        device = parse_device(self.spec.device, "device")
        for i, name in enumerate((self.spec.gleam.devices or []) if self.spec.strategy == "gleam" else []):
            parse_device(name, f"gleam.devices[{i}]")  # a missing GPU fails before any data is built
        return device

    def _batch_stream(self) -> BatchStream:
        d = self.spec.data
        return BatchStream(self.train_set, d.batch_size, collate, self.spec.seed, d.shuffle, d.num_workers,
                           pin_memory=self.device.type == "cuda")

    def _build_strategy(self) -> Strategy:
        return build_strategy(self.spec, self.model, self.total, self.device)

    def _saved_rng(self, state: dict) -> dict:
        return state["rng"]

    def _open_log(self, state: dict | None) -> MetricsLog | None:
        return MetricsLog(self.run_dir, self.spec.logging, resume_from=self.iteration if state is not None else None)

    def _open_run_dir(self, resume: bool) -> dict | None:
        """Creates or checks the run directory; returns the checkpoint to resume from."""
        spec_file = self.run_dir / "spec.yaml"
        latest = latest_checkpoint(self.run_dir)
        if not resume:
            if latest is not None:
                raise RuntimeError(f"output directory {str(self.run_dir)!r} already holds a run (latest checkpoint "
                                   f"{latest.name}); pass --resume to continue it or set output to a new directory")
            atomic_write_text(spec_file, spec_to_yaml(self.spec))
            return None
        if latest is None:
            raise RuntimeError(f"--resume: no checkpoint in {str(self.run_dir / 'checkpoints')!r} to resume from")
        state = load_checkpoint(latest)
        saved = parse_spec(state["spec"])
        for section in ("model", "strategy", "data", "masks", "loss", "optimizer", "precision", "seed"):
            if getattr(saved, section) != getattr(self.spec, section):
                raise SpecError(section, f"differs from the run being resumed ({latest}); a resumed run must "
                                         "keep the data, model, strategy, loss, optimizer, precision and seed")
        atomic_write_text(spec_file, spec_to_yaml(self.spec))
        print(f"resuming {self.run_dir} from {latest.name} (iteration {state['iteration']})", file=self.out)
        return state

    # ---- checkpoints -----------------------------------------------------------------------

    def _payload(self) -> dict:
        self.strategy.join()  # the weights and optimizer states are read on the default stream
        return {"model": self.model.state_dict(), "model_description": self.model.description(),
                "strategy": self.spec.strategy, "strategy_state": self.strategy.state_dict(),
                "data_state": self.stream.state_dict(), "rng": rng_state(), "spec": to_dict(self.spec),
                "last_val": self.last_val, "best": self.best}

    def save(self) -> Path:
        """Checks the steps not yet read back (a NaN stops training before it can be saved) and
        writes a checkpoint of ``self.iteration``."""
        self._settle()
        path = save_checkpoint(self.run_dir, self.iteration, self._payload(), self.spec.schedule.keep_last)
        self.saved_iteration = self.iteration
        return path

    def keep_best(self, val: dict) -> None:
        """Writes ``checkpoints/best.pt`` when ``val`` has the best validation PSNR so far, so a
        run that overfits late still leaves its best network (gleam-eval/recon read it)."""
        if not math.isfinite(val["psnr"]):  # NaN would never compare greater again: best.pt would freeze
            return
        if self.best is None or val["psnr"] > self.best["value"]:
            self.best = {"metric": "psnr", "value": float(val["psnr"]), "iteration": self.iteration}
            save_checkpoint(self.run_dir, self.iteration, self._payload(), self.spec.schedule.keep_last, best=True)

    # ---- validation ------------------------------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict:
        """Validation loss and PSNR/SSIM/NRMSE of the reconstruction and of the zero-filled image."""
        sums: dict[str, float] = {}
        count, figure = 0, None
        limit = self.spec.schedule.val_batches
        for b, batch in enumerate(val_loader(self.val_set, self.spec.data, collate)):
            if limit is not None and b >= limit:
                break
            problem, target = batch_problem(batch, self.spec.data.kind, self.device)
            recon = self.strategy.reconstruct(problem)
            count += add_batch_metrics(sums, recon, problem, target, self.loss_fn)
            if figure is None:
                figure = comparison(problem.ahy[0], recon[0], target[0])
        result = {k: v / count for k, v in sums.items()}
        self.log.write("val", self.iteration, result)
        if figure is not None and self.spec.logging.images:
            save_png(figure, self.run_dir / "figures" / f"val_{self.iteration:08d}.png")
            self.log.image("val/comparison", figure, self.iteration)
        self.last_val = result
        return result

    # ---- training --------------------------------------------------------------------------

    def _check_finite(self, losses: list[float], iteration: int) -> None:
        """``iteration``: 0-based, before the step."""
        check_losses_finite(losses, range(len(losses)), iteration, self.saved_iteration, self.run_dir)

    def _interval(self, steps: int, seconds: float) -> dict:
        """Per-interval figures added to the last step's record."""
        return {"step_time_s": seconds / steps}

    def _train_one(self) -> None:
        """Loads the next batch and issues one step; nothing is read back from the devices."""
        problem, target = batch_problem(next(self.stream), self.spec.data.kind, self.device)
        self._unresolved.append((self.iteration, self.strategy.train_step(problem, target)))
        self.iteration += 1

    def _settle(self) -> dict | None:
        """Reads back every step issued since the last call (:func:`resolve_steps`: one
        synchronize per CUDA device, one transfer of all their losses) and checks them in
        order: the first non-finite loss raises :class:`TrainingDiverged`. Returns the last
        step's statistics with the interval's figures (:meth:`_interval`); None before any step."""
        if not self._unresolved:
            return self.last_stats
        steps, self._unresolved = self._unresolved, []
        stats = resolve_steps([result for _, result in steps])
        seconds = time.perf_counter() - self._clock
        for (iteration, _), st in zip(steps, stats):
            self._check_finite(st["loss"], iteration)
        self.strategy.review(stats)
        self.last_stats = {**stats[-1], **self._interval(len(steps), seconds)}
        self._restart_clock()
        return self.last_stats

    def _restart_clock(self) -> None:
        """Starts timing the next interval (also after a validation or a checkpoint, which are
        not training time)."""
        self._clock = time.perf_counter()

    def run(self) -> dict:
        """Trains to the end of the schedule; returns the final validation metrics."""
        spec, s = self.spec, self.spec.schedule
        bar = tqdm(total=self.total, initial=self.iteration, disable=not spec.logging.progress, unit="it",
                   dynamic_ncols=True, desc=f"{spec.strategy}")
        in_step = False
        stop = DeferredInterrupt(self.out)
        self._restart_clock()
        try:
            with stop:
                while self.iteration < self.total:
                    if stop.requested:
                        raise KeyboardInterrupt
                    in_step = True  # from here until the count advances, state and position disagree
                    self._train_one()
                    in_step = False
                    bar.update(1)
                    it, last = self.iteration, self.iteration == self.total
                    if it % spec.logging.every == 0 or last:
                        stats = self._settle()
                        bar.set_postfix_str(" ".join(f"l{m}={v:.4g}" for m, v in enumerate(stats["loss"]))
                                            + f" mem={_fmt_bytes(stats['peak_bytes'])}", refresh=False)
                        self.log.write("train", it, {**stats, "lr": self.strategy.lrs(), "epoch": self.stream.epoch})
                    if it % s.val_every == 0 or last:
                        self._settle()
                        val = self.validate()
                        self.keep_best(val)
                        bar.write(f"[{it}] val loss {val['loss']:.4g}  "
                                  f"PSNR ({psnr_convention(spec.data.kind)}) {val['psnr']:.2f} dB "
                                  f"(zero-filled {val['psnr_zf']:.2f})  SSIM {val['ssim']:.4f} "
                                  f"(zero-filled {val['ssim_zf']:.4f})")
                    if it % s.checkpoint_every == 0 or last:
                        self.save()
                    if it % s.val_every == 0 or it % s.checkpoint_every == 0:
                        self._restart_clock()
        except KeyboardInterrupt:
            if not in_step and self.iteration != self.saved_iteration:
                path = self.save()
                print(f"\ninterrupted: saved {path}; continue with --resume", file=self.out)
            elif self.saved_iteration is not None:
                print(f"\ninterrupted; continue from the last checkpoint (iteration {self.saved_iteration}) "
                      "with --resume", file=self.out)
            else:
                print("\ninterrupted before any checkpoint was written; nothing to resume", file=self.out)
            raise
        finally:
            bar.close()
            self.log.close()
        val = self.last_val if self.last_val is not None else self.validate()
        print(f"final validation ({self.strategy.name}, {self.total} iterations): "
              f"PSNR ({psnr_convention(spec.data.kind)}) {val['psnr']:.2f} dB vs "
              f"zero-filled {val['psnr_zf']:.2f} dB ({val['psnr'] - val['psnr_zf']:+.2f} dB); SSIM {val['ssim']:.4f} "
              f"vs {val['ssim_zf']:.4f}; NRMSE {val['nrmse']:.4f} vs {val['nrmse_zf']:.4f}", file=self.out)
        if self.best is not None:
            print(f"best validation PSNR {self.best['value']:.2f} dB at iteration {self.best['iteration']}, kept as "
                  f"{self.run_dir / 'checkpoints' / 'best.pt'} (gleam-eval and gleam-recon read it by default; they "
                  "score per volume, fastMRI's convention)", file=self.out)
        return val
