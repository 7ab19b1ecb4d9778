"""Optimizers and learning-rate schedules (the ``optimizer:`` section of a spec).

An :class:`Updater` owns one optimizer and its scheduler for one set of parameters: the
whole network for e2e/checkpoint/invertible, one per module for GLEAM. Schedules are
per iteration.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn


@dataclass
class SchedulerConfig:
    """``constant``, ``cosine`` (to ``min_lr_ratio * lr`` at the last iteration) or ``step`` (times
    ``gamma`` every ``step_size`` iterations), after ``warmup`` iterations of linear warm-up."""

    type: Literal["constant", "cosine", "step"] = "constant"
    warmup: int = field(default=0, metadata={"min": 0})
    step_size: int = field(default=1000, metadata={"min": 1})
    gamma: float = field(default=0.5, metadata={"min": 0.0})
    min_lr_ratio: float = field(default=0.0, metadata={"min": 0.0})


@dataclass
class OptimizerConfig:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = field(default=1e-3, metadata={"above": 0.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = field(default=0.9, metadata={"min": 0.0})   # sgd only
    grad_clip: float | None = field(default=None, metadata={"above": 0.0})  # max global gradient norm
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)


def lr_factor(cfg: SchedulerConfig, total: int, it: int) -> float:
    """The multiplier of the base learning rate at iteration ``it`` of ``total``."""
    if it < cfg.warmup:
        return (it + 1) / cfg.warmup
    if cfg.type == "cosine":
        span = max(total - cfg.warmup, 1)
        progress = min((it - cfg.warmup) / span, 1.0)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.type == "step":
        return cfg.gamma ** ((it - cfg.warmup) // cfg.step_size)
    return 1.0


class Updater:
    """Optimizer + scheduler (+ optional gradient clipping) of ``params``; ``total`` iterations.

    ``scale_grads`` (fp16 mixed precision): a ``torch.amp.GradScaler`` of its own scales the
    loss before backward and skips the steps whose gradients overflow. The optimizer is then
    the fused implementation, which takes the scaler's overflow flag on the device, so even a
    skipped step costs no host sync.
    """

    def __init__(self, params: Iterable[nn.Parameter], cfg: OptimizerConfig, total: int,
                 scale_grads: bool = False) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("an optimizer needs at least one trainable parameter, got none")
        self.cfg = cfg
        fused = {"fused": True} if scale_grads else {}
        if cfg.name == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                self.params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **fused)
        else:
            cls = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
            self.optimizer = cls(self.params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                                 **fused)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: lr_factor(cfg.scheduler, total, it))
        self.scaler = torch.amp.GradScaler(self.params[0].device.type) if scale_grads else None

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: Tensor) -> None:
        """Gradients of the 0-dim ``loss`` (scaled first under fp16)."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, schedule: bool = True) -> None:
        """Clips (if configured, on the unscaled gradients), steps the optimizer (under fp16:
        unless the gradients overflowed, then adjusts the scale), advances the schedule unless
        ``schedule`` is False (replayed steps). No host sync."""
        if self.scaler is not None and self.cfg.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip, foreach=True)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        if schedule:
            self.scheduler.step()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
