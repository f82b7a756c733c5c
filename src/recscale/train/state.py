"""Training progress and its checkpoints: what a resume restores, bit for bit."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from recscale.errors import RecscaleError
from recscale.train import checkpoint as ckpt
from recscale.train.optim import OptimConfig, OptimizerSwitch
from recscale.train.selection import Selection


@dataclass
class TrainState:
    """Everything about progress that a resume must restore (tensors are saved separately)."""

    epoch: int = 0
    step: int = 0
    tokens: int = 0
    best_metric: float | None = None
    best_epoch: int | None = None
    evals_since_best: int = 0
    legacy_best: dict[str, Any] | None = None
    wall_time_s: float = 0.0
    finished: bool = False
    stop_reason: str | None = None
    switch: dict[str, Any] = field(default_factory=dict)

    @property
    def selection(self) -> Selection:
        return Selection(self.best_metric, self.best_epoch, self.evals_since_best, self.legacy_best)

    def select(self, selection: Selection) -> None:
        self.best_metric, self.best_epoch = selection.best_metric, selection.best_epoch
        self.evals_since_best, self.legacy_best = selection.evals_since_best, selection.legacy_best


def save_state(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    sampler: torch.Generator,
) -> None:
    meta, tensors = ckpt.optimizer_to_flat(optimizer)
    tensors.update(ckpt.rng_state({"sampler": sampler}))
    ckpt.save_checkpoint(
        directory, model, {"train_state": asdict(state), "optimizer": meta}, tensors
    )


def restore_state(
    directory: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    switch: OptimizerSwitch,
    sampler: torch.Generator,
    optim_cfg: OptimConfig,
    device: torch.device,
) -> tuple[TrainState, torch.optim.Optimizer]:
    """Load weights, optimizer, sampler RNG and progress; returns the optimizer in use
    (an SGD one when the run had switched)."""
    weights, meta, tensors = ckpt.load_checkpoint(directory)
    model.load_state_dict(weights)
    state = TrainState(**meta["train_state"])
    if state.switch:
        switch.load_state_dict(state.switch)
    if switch.switched:
        optimizer = switch.switch(model, optim_cfg)
    ckpt.optimizer_from_flat(
        optimizer,
        meta["optimizer"],
        {k: v.to(device) for k, v in tensors.items() if k.startswith("optim.")},
    )
    ckpt.restore_rng(tensors, {"sampler": sampler})
    return state, optimizer


def checkpoint_epoch(directory: Path) -> int | None:
    """The epoch a ``save_state`` checkpoint was taken after (``None``: no checkpoint)."""
    found = ckpt.find_checkpoint(directory)
    if found is None:
        return None
    try:
        return int(json.loads((found / ckpt.STATE_JSON).read_text())["train_state"]["epoch"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def init_weights(model: torch.nn.Module, source: str | Path) -> None:
    """Load another run's best weights (or a checkpoint directory's) into ``model``."""
    source = Path(source)
    target = source / "checkpoints" / "best" if (source / "checkpoints").is_dir() else source
    weights, _, _ = ckpt.load_checkpoint(target)
    own = model.state_dict()
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in weights.items()
        if k in own and v.shape != own[k].shape
    ]
    missing = sorted(set(own) - set(weights))
    unexpected = sorted(set(weights) - set(own))
    if mismatched or missing or unexpected:
        raise RecscaleError(
            f"train.init_from {source}: the weights do not fit this model "
            f"(shape mismatch: {mismatched or 'none'}; missing: {missing or 'none'}; "
            f"unexpected: {unexpected or 'none'}); use the same model config and item space"
        )
    model.load_state_dict({k: v.to(own[k].device) for k, v in weights.items()})
