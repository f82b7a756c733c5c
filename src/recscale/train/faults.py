"""What keeps a fault from losing work: when a mid-epoch checkpoint is due, and a stop
that every rank agrees on (a rank that stops alone leaves the others waiting forever)."""

from __future__ import annotations

import time

import torch

from recscale.train.distributed import Dist, all_reduce_sum


def all_agree(ok: bool, dist: Dist) -> bool:
    """``ok`` on every rank (one all-reduce under ``torchrun``, nothing otherwise)."""
    if not dist.enabled:
        return ok
    return all_reduce_sum(torch.tensor(float(not ok)), dist).item() == 0


class CheckpointClock:
    """A checkpoint every ``every_steps`` optimizer steps and/or ``every_minutes`` minutes
    since the last one (rank 0's clock decides for all ranks)."""

    def __init__(self, every_steps: int | None, every_minutes: float | None, dist: Dist) -> None:
        self.every_steps, self.every_minutes, self.dist = every_steps, every_minutes, dist
        self.saved_at = time.monotonic()

    def due(self, step: int) -> bool:
        due = bool(self.every_steps) and step % self.every_steps == 0
        if self.every_minutes is not None and self.dist.is_main:
            due = due or time.monotonic() - self.saved_at >= self.every_minutes * 60
        return not all_agree(not due, self.dist)

    def saved(self) -> None:
        self.saved_at = time.monotonic()


def fault_message(reason: str) -> str:
    """The stop reason of a run stopped by a numerical fault, with what to try."""
    return (
        f"{reason}; the run stopped and checkpoints/last holds the last good state (try a "
        "lower optim.lr, optim.grad_clip or train.precision fp32 in a new run; "
        "train.init_from=<this run>/checkpoints/last starts it from those weights)"
    )
