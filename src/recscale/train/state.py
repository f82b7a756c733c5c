"""Training progress and its checkpoints: what a resume restores, bit for bit."""

from __future__ import annotations

from collections.abc import Callable
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
    # Set when the run stopped on a fault (a non-finite loss or weights), not by a rule.
    failure: str | None = None
    switch: dict[str, Any] = field(default_factory=dict)
    # Within epoch ``epoch`` (0-based; epochs completed so far): the micro-batches done and
    # their loss sum and target count, so a mid-epoch checkpoint resumes exactly there.
    micro: int = 0
    epoch_loss: float = 0.0
    epoch_count: int = 0
    # train.batch_size x ranks when the checkpoint was written (None before it was kept).
    global_batch: int | None = None

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
    previous: Path | None = None,
) -> None:
    """Checkpoint everything a resume restores; the checkpoint replaced moves to ``previous``."""
    meta, tensors = ckpt.optimizer_to_flat(optimizer)
    tensors.update(ckpt.rng_state({"sampler": sampler}))
    ckpt.save_checkpoint(
        directory, model, {"train_state": asdict(state), "optimizer": meta}, tensors, previous
    )


def restore_state(
    directory: Path,
    previous: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    switch: OptimizerSwitch,
    sampler: torch.Generator,
    optim_cfg: OptimConfig,
    device: torch.device,
) -> tuple[TrainState, torch.optim.Optimizer]:
    """Load weights, optimizer, RNG states and progress from ``directory`` (``previous``
    when it is damaged); returns the optimizer in use (an SGD one when the run had switched)."""
    used, (weights, meta, tensors) = load_for_resume(directory, previous)
    if used != directory:
        ckpt.set_aside(directory)  # else the next save would keep it as the previous one
    load_fitting(model, weights, f"--resume from {used}", "the config the run was started with")
    state, optimizer = restore_progress(meta, used, model, optimizer, switch, optim_cfg)
    ckpt.optimizer_from_flat(
        optimizer,
        meta["optimizer"],
        {k: v.to(device) for k, v in tensors.items() if k.startswith("optim.")},
    )
    ckpt.restore_rng(tensors, {"sampler": sampler})
    return state, optimizer


def load_for_resume(
    directory: Path, previous: Path, read: Callable[[Path], Any] | None = None
) -> tuple[Path, Any]:
    """:func:`~recscale.train.checkpoint.load_verified` for ``--resume``: a checkpoint with
    no intact copy left is an error that says how to start over."""
    try:
        return ckpt.load_verified(directory, previous, read)
    except ckpt.CorruptCheckpoint as err:
        raise ckpt.CorruptCheckpoint(
            f"{err}; start the run again without --resume (in a new --out directory)"
        ) from None


def restore_progress(
    meta: dict[str, Any],
    used: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    switch: OptimizerSwitch,
    optim_cfg: OptimConfig,
) -> tuple[TrainState, torch.optim.Optimizer]:
    """The progress a checkpoint's JSON records, and the optimizer to load its state into
    (an SGD one when the run had switched; the same type as the run's, or a user error)."""
    state = TrainState(**meta["train_state"])
    if state.switch:
        switch.load_state_dict(state.switch)
    if switch.switched:
        optimizer = switch.switch(model, optim_cfg)
    saved = meta["optimizer"].get("type")
    if saved != type(optimizer).__name__:
        raise RecscaleError(
            f"--resume from {used}: the run was trained with {saved}, the config now asks for "
            f"{type(optimizer).__name__}; resume with the config the run was started with"
        )
    return state, optimizer


def check_resume_position(state: TrainState, global_batch: int, used: Path) -> None:
    """A mid-epoch position counts micro-batches of the saved global batch (per-rank batch
    x ranks); another global batch would cut the epoch's users differently."""
    if state.micro and state.global_batch not in (None, global_batch):
        raise RecscaleError(
            f"--resume from {used}: the checkpoint is mid-epoch with a global batch of "
            f"{state.global_batch} users (train.batch_size x ranks), this run has "
            f"{global_batch}; set train.batch_size so that batch_size x ranks = "
            f"{state.global_batch}"
        )


def init_weights(model: torch.nn.Module, source: str | Path) -> None:
    """Load another run's best weights (or a checkpoint directory's) into ``model``."""
    source = Path(source)
    target = source / "checkpoints" / "best" if (source / "checkpoints").is_dir() else source
    weights, _, _ = ckpt.load_checkpoint(target)
    load_fitting(
        model, weights, f"train.init_from {source}", "the same model config and item space"
    )


def load_fitting(
    model: torch.nn.Module, weights: dict[str, torch.Tensor], what: str, remedy: str
) -> None:
    """``model.load_state_dict(weights)``, or a user error listing what does not fit."""
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
            f"{what}: the weights do not fit this model (shape mismatch: {_few(mismatched)}; "
            f"missing: {_few(missing)}; unexpected: {_few(unexpected)}); use {remedy}"
        )
    model.load_state_dict({k: v.to(own[k].device) for k, v in weights.items()})


def _few(names: list[str], shown: int = 3) -> str:
    if not names:
        return "none"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def weights_finite(model: torch.nn.Module) -> bool:
    """No parameter holds a NaN or an infinity (of a sharded one: this rank's shard)."""
    return all(bool(torch.isfinite(_local(p)).all()) for p in model.parameters())


def _local(p: torch.Tensor) -> torch.Tensor:
    to_local = getattr(p, "to_local", None)  # a DTensor (FSDP): this rank's shard
    return to_local() if callable(to_local) else p
