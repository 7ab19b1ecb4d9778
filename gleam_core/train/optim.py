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
from torch import nn


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
    """Optimizer + scheduler (+ optional gradient clipping) of ``params``; ``total`` iterations."""

    def __init__(self, params: Iterable[nn.Parameter], cfg: OptimizerConfig, total: int) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("an optimizer needs at least one trainable parameter, got none")
        self.cfg = cfg
        if cfg.name == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                self.params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        else:
            cls = torch.optim.Adam if cfg.name == "adam" else torch.optim.AdamW
            self.optimizer = cls(self.params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda it: lr_factor(cfg.scheduler, total, it))

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Clips (if configured), steps the optimizer, advances the schedule. No host sync."""
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip, foreach=True)
        self.optimizer.step()
        self.scheduler.step()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
