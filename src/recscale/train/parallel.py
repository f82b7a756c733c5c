"""How a run spreads its model over the ranks: ``train.parallelism``.

``replicate`` (the default): every rank holds the whole model, optimizer state included;
gradients are summed by hand (:func:`~recscale.train.distributed.sum_gradients`) and rank
0 writes single-file checkpoints. ``fsdp``: PyTorch's FSDP2 (``fully_shard``) on every
block of the encoder and on the model itself, so each rank keeps 1/R of the parameters,
gradients and optimizer state and gathers a block's parameters only while it runs; for
models whose tables or optimizer state do not fit one device. Its ``last`` checkpoints are
sharded (:mod:`recscale.train.sharded`) and resume on any number of ranks; ``best`` is
written whole, so evaluation and serving need no process group.

Both give the same optimizer steps (tests hold FSDP equal to replicate under ``torchrun``).
Evaluation under FSDP gathers the whole model on every rank for its duration: the memory
saving is in training, where the gradients and the optimizer state live.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from recscale.registry import Registry
from recscale.train import checkpoint as ckpt
from recscale.train.distributed import Dist, sum_gradients
from recscale.train.optim import OptimConfig, OptimizerSwitch
from recscale.train.state import TrainState, restore_state, save_state

PARALLELISMS: Registry = Registry("train.parallelism")

# Methods of the recommender that read parameters outside ``forward``: under FSDP each
# gathers the parameters it needs, as ``forward`` would.
FORWARD_METHODS = ("encode", "item_vectors", "behaviour_logits")


@PARALLELISMS.register("replicate")
class Replicate:
    """Every rank holds the whole model."""

    sharded = False

    def __init__(self, dist: Dist, device: torch.device) -> None:
        self.dist, self.device = dist, device

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def sync_gradients(self, params: list[nn.Parameter]) -> float:
        """Make each gradient the sum over ranks divided by the returned factor."""
        sum_gradients(params, self.dist)
        return 1.0

    @contextmanager
    def gathered(self, model: nn.Module) -> Iterator[nn.Module]:
        """The model with all its parameters in place, for evaluation."""
        yield model

    def full_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """Collective: the whole state dict on rank 0 (other ranks may get an empty one)."""
        return model.state_dict()

    def load_full_weights(self, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
        model.load_state_dict(weights)

    def save(
        self,
        directory: Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        state: TrainState,
        sampler: torch.Generator,
        previous: Path,
    ) -> None:
        """Collective: checkpoint the run as ``directory``."""
        if self.dist.is_main:
            save_state(directory, model, optimizer, state, sampler, previous=previous)

    def restore(
        self,
        directory: Path,
        previous: Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        switch: OptimizerSwitch,
        sampler: torch.Generator,
        optim_cfg: OptimConfig,
    ) -> tuple[TrainState, torch.optim.Optimizer]:
        return restore_state(
            directory, previous, model, optimizer, switch, sampler, optim_cfg, self.device
        )


@PARALLELISMS.register("fsdp")
class FullyShard(Replicate):
    """FSDP2: parameters, gradients and optimizer state sharded over the ranks."""

    sharded = True

    def wrap(self, model: nn.Module) -> nn.Module:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # FSDP allocates on the current device
        mesh = init_device_mesh(self.device.type, (self.dist.world_size,))
        # Blocks first (inner units), then the root, which keeps the item tables.
        for module in list(model.modules()):
            if isinstance(module, nn.ModuleList):
                for block in module:
                    fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
        for name in FORWARD_METHODS:
            if hasattr(model, name):
                register_fsdp_forward_method(model, name)
        return model

    def sync_gradients(self, params: list[nn.Parameter]) -> float:
        # FSDP's reduce-scatter has already averaged them over the ranks (gloo allows no
        # other reduction), so the sum is R times the mean.
        return 1.0 / self.dist.world_size

    @contextmanager
    def gathered(self, model: nn.Module) -> Iterator[nn.Module]:
        # Ranks evaluate different numbers of batches, so nothing may be gathered per
        # batch: gather everything once, keep it through every forward, then reshard.
        from torch.distributed.fsdp import FSDPModule

        units = [m for m in model.modules() if isinstance(m, FSDPModule)]
        resharding = {m: m is not model for m in units}
        for unit in units:
            unit.set_reshard_after_forward(False, recurse=False)
            unit.unshard()
        try:
            yield model
        finally:
            for unit in units:
                unit.reshard()
                unit.set_reshard_after_forward(resharding[unit], recurse=False)

    def full_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(model, options=options)

    def load_full_weights(self, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True))

    def save(self, directory, model, optimizer, state, sampler, previous) -> None:
        from recscale.train.sharded import save_sharded

        save_sharded(directory, model, optimizer, state, sampler, self.dist, previous)

    def restore(self, directory, previous, model, optimizer, switch, sampler, optim_cfg):
        from recscale.train.sharded import restore_sharded

        return restore_sharded(
            directory, previous, model, optimizer, switch, sampler, optim_cfg, self.dist
        )


def save_best(
    parallel: Replicate, directory: Path, model: nn.Module, meta: dict, dist: Dist
) -> None:
    """Collective: the selected weights, whole, as a single-file checkpoint (rank 0)."""
    weights = parallel.full_weights(model)
    if dist.is_main:
        ckpt.save_checkpoint(directory, weights, meta, {})
