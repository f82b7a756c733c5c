"""One optimizer step: gradient normalisation, learning-rate schedule, clipping.

Gradients are normalised by the *global* number of target positions in the step, so
gradient accumulation and ``torchrun`` give the same update as one big batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from recscale.data.dataset import SequenceDataset
from recscale.train.distributed import Dist, all_reduce_sum
from recscale.train.facts import train_positions
from recscale.train.optim import set_lr


class OptimizerStep:
    """Owns what every step does to the gradients before ``optimizer.step()``.

    Args:
        params: the trainable parameters.
        lr: the base learning rate.
        schedule: optimizer step (0-based) -> multiplier on ``lr``.
        grad_clip: max global gradient norm, or None.
        dist: the process group (target counts are summed across its ranks).
        sync_gradients: makes each gradient the sum over ranks divided by the factor it
            returns (``train.parallelism`` decides how).
    """

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        lr: float,
        schedule: Callable[[int], float],
        grad_clip: float | None,
        dist: Dist,
        sync_gradients: Callable[[list[torch.nn.Parameter]], float],
    ) -> None:
        self.params, self.lr, self.schedule = params, lr, schedule
        self.grad_clip, self.dist, self.sync_gradients = grad_clip, dist, sync_gradients

    def __call__(
        self, optimizer: torch.optim.Optimizer, step: int, local_count: int, scheduled: bool
    ) -> int:
        """Apply the accumulated gradients of ``local_count`` targets (this rank's) as
        optimizer step ``step``; ``scheduled`` is False once the optimizer manages its own
        rate (after an Adam -> SGD switch). Returns the global target count of the step."""
        global_count = int(all_reduce_sum(torch.tensor(float(local_count)), self.dist).item())
        scale = self.sync_gradients(self.params) * max(global_count, 1)
        for p in self.params:
            if p.grad is not None:
                p.grad.div_(scale)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if scheduled:
            set_lr(optimizer, self.lr, self.schedule(step))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return global_count


def optimizer_steps(
    train_set: SequenceDataset,
    max_len: int,
    epochs: int,
    steps_per_epoch: int,
    max_tokens: int | None,
    grad_accum: int,
) -> int:
    """Optimizer steps the run will take (the horizon of the learning-rate schedule)."""
    steps = epochs * steps_per_epoch
    if max_tokens is not None:
        per_epoch = max(1, int(train_positions(train_set, max_len).sum()))
        steps = min(steps, math.ceil(max_tokens / per_epoch * steps_per_epoch))
    return max(1, math.ceil(steps / grad_accum))
