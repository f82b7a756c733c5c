"""The single-process epoch loop that the ranking and generative tasks share.

The retrieval trainer (``trainer.py``) has its own loop (distributed, mixed precision, fault
handling). The other tasks train in one process in fp32, and differ only in what a batch's
loss is and how a checkpoint is scored, so they plug those two in here: resume from
``checkpoints/last``, one metrics.jsonl record per epoch, the best valid checkpoint kept with
its metrics, early stopping on ``train.patience``, and a checkpoint at the end of every epoch.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from recscale.config import dump_yaml
from recscale.data.dataset import SequenceDataset
from recscale.data.splits import Split
from recscale.errors import RecscaleError
from recscale.train import checkpoint as ckpt
from recscale.train.config import RunConfig, check_run_inputs
from recscale.train.distributed import pick_device
from recscale.train.epoch_log import append_record, trim_metrics
from recscale.train.facts import dataset_record
from recscale.train.optim import lr_factor, set_lr
from recscale.train.record import RunRecord, ScalingFacts, find_run_record, write_run_record
from recscale.train.result import RunResult, seed_everything
from recscale.train.state import TrainState


def setup(cfg: RunConfig) -> torch.device:
    """Before any data is read: the config's inputs checked, the device, threads and seeds."""
    check_run_inputs(cfg)
    device = pick_device(cfg.train.device)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.seed)
    return device


def total_steps(cfg: RunConfig, split: Split) -> int:
    """Optimizer steps of the whole run: one batch of users with a target per step."""
    users = int((split.train.lengths >= 2).sum())
    return cfg.train.epochs * math.ceil(users / cfg.train.batch_size)


def finish(
    cfg: RunConfig,
    run_dir: Path,
    state: TrainState,
    protocol: str,
    select_metric: str,
    test: dict[str, float],
    valid: dict[str, float] | None,
    facts: ScalingFacts,
) -> RunResult:
    """Write ``final.json`` for the selected checkpoint's test metrics."""
    record = RunRecord(
        run=cfg.name or run_dir.name,
        protocol=protocol,
        split=cfg.data.split,
        selection="best-valid-then-test",
        select_metric=select_metric,
        best_epoch=state.best_epoch,
        seed=cfg.seed,
        test=test,
        valid=valid,
        stop_reason=state.stop_reason or "epochs done",
        facts=facts,
    )
    write_run_record(record, run_dir / "final.json")
    return RunResult(run_dir, record.to_dict())


def start(
    cfg: RunConfig,
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    dataset: SequenceDataset,
    split: Split,
    resume: bool,
) -> tuple[TrainState, RunRecord | None]:
    """A fresh run directory, or the state of ``checkpoints/last`` with the model and
    optimizer restored; the finished run's record when there is nothing left to do."""
    last, previous = run_dir / "checkpoints" / "last", run_dir / "checkpoints" / "previous"
    state, done = TrainState(), None
    if resume and ckpt.find_checkpoint(last, previous) is not None:
        weights, saved, tensors = ckpt.load_checkpoint(last, previous)
        model.load_state_dict(weights)
        ckpt.optimizer_from_flat(optimizer, saved["optimizer"], tensors)
        state = TrainState(**saved["train_state"])
        trim_metrics(run_dir / "metrics.jsonl", state.epoch)
        record = find_run_record(run_dir)
        if record is not None and (state.stop_reason or state.epoch >= cfg.train.epochs):
            done = record
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").write_text("")
    dump_yaml(cfg, run_dir / "config.yaml")
    (run_dir / "dataset.json").write_text(json.dumps(dataset_record(dataset, split), indent=1))
    return state, done


def optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss: torch.Tensor,
    state: TrainState,
    total_steps: int,
    cfg: RunConfig,
) -> None:
    """One step on ``loss`` at the scheduled learning rate (and gradient clip)."""
    if not torch.isfinite(loss):
        raise RecscaleError(f"non-finite {cfg.task} loss at step {state.step}; lower optim.lr")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    set_lr(optimizer, cfg.optim.lr, lr_factor(state.step, total_steps, cfg.optim))
    if cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
    optimizer.step()
    state.step += 1


def better(value: float, best: float | None, lower_is_better: bool) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if lower_is_better else value > best


def run_epochs(
    cfg: RunConfig,
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    train_epoch: Callable[[int], Iterable[tuple[torch.Tensor, int]]],
    evaluate: Callable[[], dict[str, float]],
    total_steps: int,
    select_metric: str,
    lower_is_better: bool = False,
    count_name: str = "examples",
) -> None:
    """Epochs from ``state.epoch`` on: ``train_epoch(epoch)`` yields each batch's loss and
    its number of scored examples (this loop takes the optimizer steps, ``total_steps`` in
    all for the learning-rate schedule), ``evaluate()`` scores the model on validation."""
    checkpoints = run_dir / "checkpoints"
    started = time.perf_counter() - state.wall_time_s
    for epoch in range(state.epoch, cfg.train.epochs):
        if state.stop_reason:
            break  # stopped early, then killed before final.json: only the test is left
        model.train()
        torch.manual_seed(cfg.seed + 1000 + epoch)  # dropout: the same after a resume
        total = count = 0.0
        for loss, n in train_epoch(epoch):
            optimizer_step(model, optimizer, loss, state, total_steps, cfg)
            total, count = total + float(loss.detach()) * n, count + n
        state.tokens += int(count)
        state.epoch = epoch + 1
        record: dict[str, Any] = {
            "epoch": state.epoch,
            "step": state.step,
            count_name: state.tokens,
            "train_loss": total / max(count, 1),
            "lr": optimizer.param_groups[0]["lr"],
        }
        if state.epoch % cfg.train.eval_every == 0 or state.epoch == cfg.train.epochs:
            metrics = evaluate()
            record["valid"] = metrics
            value = metrics[select_metric]
            if better(value, state.best_metric, lower_is_better):
                state.best_metric, state.best_epoch, state.evals_since_best = value, state.epoch, 0
                # the best checkpoint keeps its valid metrics, so the end need not recompute them
                ckpt.save_checkpoint(checkpoints / "best", model, {"valid": metrics}, {})
            else:
                state.evals_since_best += 1
                if cfg.train.patience is not None and state.evals_since_best >= cfg.train.patience:
                    state.stop_reason = f"early stop: no better valid {select_metric}"
        state.wall_time_s = time.perf_counter() - started
        record["wall_time_s"] = round(state.wall_time_s, 3)
        append_record(run_dir / "metrics.jsonl", record)
        meta, tensors = ckpt.optimizer_to_flat(optimizer)
        state_out = {"train_state": asdict(state), "optimizer": meta}
        last, previous = checkpoints / "last", checkpoints / "previous"
        ckpt.save_checkpoint(last, model, state_out, tensors, previous)
        if state.stop_reason:
            break


def load_best(model: torch.nn.Module, run_dir: Path) -> dict[str, float] | None:
    """Load the best valid checkpoint into ``model``; its valid metrics (None without one)."""
    best = run_dir / "checkpoints" / "best"
    if ckpt.find_checkpoint(best) is None:
        return None
    weights, saved, _ = ckpt.load_checkpoint(best)
    model.load_state_dict(weights)
    return saved["valid"]
