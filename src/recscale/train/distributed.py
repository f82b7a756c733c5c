"""Process groups under ``torchrun`` and device choice.

Gradients are summed across ranks by hand (not DDP) so that the loss can be
normalised by the *global* number of target positions: the update then equals a
single-process step on the union of the ranks' batches, exactly.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    # A one-process group this process made (FSDP needs a group even alone).
    solo_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_kind: str, need_group: bool = False) -> Dist:
    """Join the process group that ``torchrun`` set up (gloo on CPU, NCCL on CUDA); alone
    and with ``need_group``, make a one-process group in memory."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    backend = "nccl" if device_kind == "cuda" else "gloo"
    if world <= 1:
        if not need_group or dist.is_initialized():
            return Dist()
        dist.init_process_group(backend=backend, store=dist.HashStore(), rank=0, world_size=1)
        return Dist(solo_group=True)
    ours = not dist.is_initialized()
    if ours:
        dist.init_process_group(backend=backend)
    joined = Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if ours:
        # Left to interpreter teardown, gloo's threads are sometimes destroyed while still
        # joinable and the rank dies with "terminate called without an active exception".
        atexit.register(shutdown, joined)
    return joined


def pick_device(requested: str, local_rank: int = 0) -> torch.device:
    """``auto`` takes CUDA when present (one GPU per local rank), then Apple MPS, then CPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(requested)


def all_reduce_sum(tensor: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def sum_gradients(params: list[torch.nn.Parameter], d: Dist) -> None:
    """Sum gradients across ranks, flattening them into one buffer to make one call."""
    if not d.enabled:
        return
    # A parameter unused on one rank must still take part, or the buffers misalign.
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def shutdown(d: Dist) -> None:
    if (d.enabled or d.solo_group) and dist.is_initialized():
        dist.destroy_process_group()
