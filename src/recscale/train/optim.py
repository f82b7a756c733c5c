"""Optimisers, learning-rate schedules and the switching optimiser of Zhang et al.

Zhang et al. (LSRM, §1.2 of REFERENCES.md) train with Adam until it converges and
then switch to SGD for the rest. ``OptimizerSwitch`` decides when (a fixed epoch, or
when the validation metric stalls for ``patience`` evaluations) and swaps the
optimizer in place; the trainer asks it after each evaluation.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from recscale.config import StrictModel

# Adam's betas are decay rates: each in [0, 1).
Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class SwitchConfig(StrictModel):
    """Adam -> SGD switch (Zhang et al.); one of ``at_epoch`` / ``patience`` triggers it."""

    at_epoch: int | None = Field(None, ge=1)
    patience: int | None = Field(3, ge=1)
    sgd_lr: float = Field(1e-2, gt=0.0)
    sgd_momentum: float = Field(0.9, ge=0.0, lt=1.0)


class OptimConfig(StrictModel):
    name: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    betas: tuple[Beta, Beta] = (0.9, 0.98)
    eps: float = Field(1e-8, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    # Norm gains and biases are not decayed (the usual transformer recipe).
    decay_norms_and_biases: bool = False
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    grad_clip: float | None = Field(None, gt=0.0)
    # Micro-batches per optimizer step.
    grad_accum: int = Field(1, ge=1)
    switch_to_sgd: SwitchConfig | None = None


def parameter_groups(model: nn.Module, weight_decay: float, decay_norms_and_biases: bool):
    """Split parameters into decayed and non-decayed groups (1-D tensors are norms/biases)."""
    if decay_norms_and_biases or weight_decay == 0:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 else decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, cfg.weight_decay, cfg.decay_norms_and_biases)
    if cfg.name == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    cls = torch.optim.AdamW if cfg.name == "adamw" else torch.optim.Adam
    return cls(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Multiplier on the base learning rate at optimizer step ``step`` (0-based)."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant" or total_steps <= cfg.warmup_steps:
        return 1.0
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base_lr * factor


class OptimizerSwitch:
    """Tracks validation progress and tells when to switch Adam -> SGD."""

    def __init__(self, cfg: SwitchConfig | None) -> None:
        self.cfg = cfg
        self.switched = False
        self.best: float | None = None
        self.stalled = 0

    def should_switch(self, epoch: int, metric: float | None) -> bool:
        """Call after each evaluation with the metric to maximise (None when not evaluated)."""
        if self.cfg is None or self.switched:
            return False
        if self.cfg.at_epoch is not None:
            return epoch + 1 >= self.cfg.at_epoch
        if metric is None or self.cfg.patience is None:
            return False
        if self.best is None or metric > self.best:
            self.best, self.stalled = metric, 0
            return False
        self.stalled += 1
        return self.stalled >= self.cfg.patience

    def switch(self, model: nn.Module, optim_cfg: OptimConfig) -> torch.optim.Optimizer:
        assert self.cfg is not None
        self.switched = True
        groups = parameter_groups(model, optim_cfg.weight_decay, optim_cfg.decay_norms_and_biases)
        return torch.optim.SGD(groups, lr=self.cfg.sgd_lr, momentum=self.cfg.sgd_momentum)

    def state_dict(self) -> dict:
        return {"switched": self.switched, "best": self.best, "stalled": self.stalled}

    def load_state_dict(self, state: dict) -> None:
        self.switched, self.best, self.stalled = state["switched"], state["best"], state["stalled"]
