"""The training loop: ``train(cfg, run_dir)`` reads top to bottom like a recipe.

Loss is put on every position of every sequence (never one sample per prefix).
Gradients are normalised by the global number of target positions in an optimizer
step, so gradient accumulation and ``torchrun`` give the same update as one big batch.
"""

from __future__ import annotations

import json
import math
import platform
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recscale.config import dump_yaml
from recscale.data import batching
from recscale.data.dataset import SequenceDataset
from recscale.data.splits import Split
from recscale.errors import RecscaleError
from recscale.eval.evaluator import evaluate
from recscale.eval.protocols import Protocol, parse_protocol
from recscale.models import SequenceRecommender
from recscale.models.size import count_parameters, flops_per_token
from recscale.train import checkpoint as ckpt
from recscale.train.config import RunConfig
from recscale.train.data import build_run_model, prepare_data
from recscale.train.distributed import (
    Dist,
    all_reduce_sum,
    barrier,
    init_distributed,
    pick_device,
    sum_gradients,
)
from recscale.train.losses import behaviour_loss, build_loss
from recscale.train.optim import OptimizerSwitch, build_optimizer, lr_factor, set_lr


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


@dataclass
class RunResult:
    run_dir: Path
    final: dict[str, Any]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False) -> RunResult:
    """Train one model as ``cfg`` says, writing everything into ``run_dir``."""
    run_dir = Path(run_dir)
    device_kind = (
        "cuda" if cfg.train.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    )
    dist = init_distributed(device_kind)
    device = pick_device(cfg.train.device, dist.local_rank)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.seed)

    dataset, split = prepare_data(cfg.data, cfg.seed)
    cfg, model = build_run_model(cfg, dataset)
    model = model.to(device)
    loss_fn = build_loss(cfg.loss)
    optimizer = build_optimizer(model, cfg.optim)
    switch = OptimizerSwitch(cfg.optim.switch_to_sgd)
    protocol = parse_protocol(cfg.eval.protocol)
    # Negatives are drawn from their own generator so dropout and sampling stay independent.
    sampler = torch.Generator().manual_seed(cfg.seed + 1 + dist.rank)
    state = TrainState()

    last_dir, best_dir = run_dir / "checkpoints" / "last", run_dir / "checkpoints" / "best"
    resuming = resume and ckpt.find_checkpoint(last_dir) is not None
    if cfg.train.init_from and not resuming:
        init_weights(model, cfg.train.init_from)
    if resuming:
        state, optimizer = _restore(last_dir, model, optimizer, switch, sampler, cfg, device)
        if state.finished and (run_dir / "final.json").is_file():
            if state.stop_reason is not None or state.epoch >= cfg.train.epochs:
                return RunResult(run_dir, json.loads((run_dir / "final.json").read_text()))
            state.finished = False  # asked for more epochs than the finished run had
    elif dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "metrics.jsonl").write_text("")
    if dist.is_main:
        dump_yaml(cfg, run_dir / "config.yaml")
        (run_dir / "dataset.json").write_text(json.dumps(_dataset_record(dataset, split), indent=1))

    steps_per_epoch = math.ceil(split.train.num_users / (cfg.train.batch_size * dist.world_size))
    # Steps here are optimizer steps; the bar counts micro-batches.
    total_steps = _total_steps(cfg, split.train, steps_per_epoch)
    writer = _tensorboard(cfg, run_dir, dist)
    autocast = _autocast(cfg.train.precision, device)
    params = [p for p in model.parameters() if p.requires_grad]

    started = time.perf_counter() - state.wall_time_s
    for epoch in range(state.epoch, cfg.train.epochs if not state.finished else state.epoch):
        model.train()
        epoch_loss, epoch_count, pending = 0.0, 0, 0
        batches = batching.train_batches(
            split.train,
            cfg.model.max_len,
            cfg.train.batch_size,
            cfg.seed,
            epoch,
            rank=dist.rank,
            world_size=dist.world_size,
        )
        bar = tqdm(
            batches,
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
            disable=not (cfg.train.progress and dist.is_main),
            leave=False,
            unit="batch",
        )
        tick, tick_tokens = time.perf_counter(), 0

        def optimizer_step(optimizer: torch.optim.Optimizer) -> None:
            nonlocal pending, tick_tokens
            global_count = int(all_reduce_sum(torch.tensor(float(pending)), dist).item())
            sum_gradients(params, dist)
            for p in params:
                if p.grad is not None:
                    p.grad.div_(max(global_count, 1))
            if cfg.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            if not switch.switched:
                set_lr(optimizer, cfg.optim.lr, lr_factor(state.step, total_steps, cfg.optim))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            state.tokens += global_count
            tick_tokens += global_count
            pending = 0

        for micro, batch in enumerate(bar, start=1):
            batch = batching.replace_inputs(
                batch, cfg.train.input_noise, dataset.num_items, sampler
            )
            batch = batching.to_device(batch, device)
            with autocast:
                hidden = model.encode(batch.items, batch.timestamps, batch.lengths, batch.ratings)
                loss_sum, count = loss_fn(model, hidden, batch.targets, sampler)
                if model.behaviour_head is not None:
                    loss_sum = loss_sum + cfg.loss.behaviour_weight * behaviour_loss(
                        model, hidden, batch.targets, batch.target_ratings
                    )
            loss_sum.backward()
            epoch_loss += float(loss_sum.detach())
            epoch_count += int(count)
            pending += int(count)
            if micro % cfg.optim.grad_accum != 0:
                continue
            optimizer_step(optimizer)
            if dist.is_main and state.step % 10 == 0:
                rate = tick_tokens / max(time.perf_counter() - tick, 1e-9)
                bar.set_postfix(
                    loss=f"{epoch_loss / max(epoch_count, 1):.4f}", tok_s=f"{rate:,.0f}"
                )
            if cfg.train.max_tokens is not None and state.tokens >= cfg.train.max_tokens:
                state.stop_reason = "token budget reached"
                break
        if pending:
            optimizer_step(optimizer)
        bar.close()

        state.epoch = epoch + 1
        state.wall_time_s = time.perf_counter() - started
        train_loss = _global_mean(epoch_loss, epoch_count, dist)
        last_epoch = state.stop_reason is not None or state.epoch == cfg.train.epochs
        record: dict[str, Any] = {
            "epoch": state.epoch,
            "step": state.step,
            "tokens": state.tokens,
            "train_loss": train_loss,
            "lr": optimizer.param_groups[0]["lr"],
            "wall_time_s": round(state.wall_time_s, 3),
        }
        if state.epoch % cfg.train.eval_every == 0 or last_epoch:
            metric = _evaluate_epoch(
                model, split, protocol, cfg, device, dist, state, record, best_dir
            )
            if switch.should_switch(epoch, metric):
                optimizer = switch.switch(model, cfg.optim)
                record["optimizer_switched_to"] = "sgd"
            if cfg.train.patience is not None and state.evals_since_best >= cfg.train.patience:
                state.stop_reason = (
                    f"early stop: no gain in {cfg.eval.select_metric} "
                    f"for {cfg.train.patience} evaluations"
                )
        if dist.is_main:
            with open(run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            if writer is not None:
                _log_tensorboard(writer, record)
        state.switch = switch.state_dict()
        if dist.is_main:
            _save(last_dir, model, optimizer, state, sampler)
        barrier(dist)
        if state.stop_reason is not None:
            break

    # Mark finished before _finish swaps the best weights in, so "last" keeps the last weights.
    state.finished = True
    if dist.is_main:
        _save(last_dir, model, optimizer, state, sampler)
        if writer is not None:
            writer.close()
    final = _finish(model, split, protocol, cfg, device, dist, state, run_dir, best_dir, dataset)
    barrier(dist)
    return RunResult(run_dir, final)


def _evaluate_epoch(
    model: SequenceRecommender,
    split: Split,
    protocol: Protocol,
    cfg: RunConfig,
    device: torch.device,
    dist: Dist,
    state: TrainState,
    record: dict[str, Any],
    best_dir: Path,
) -> float | None:
    """Evaluate, update the best checkpoint, and return the selection metric."""
    select = cfg.eval.select_metric
    metric: float | None = None
    legacy = cfg.eval.selection == "test" or split.valid is None
    if split.valid is not None:
        record["valid"] = run_protocol(model, split.valid, protocol, cfg, device, dist)
        metric = record["valid"][select]
    if legacy or cfg.eval.track_test:
        record["test"] = run_protocol(model, split.test, protocol, cfg, device, dist)
        current = record["test"][select]
        if state.legacy_best is None or current > state.legacy_best[select]:
            state.legacy_best = dict(record["test"], epoch=state.epoch)
        if legacy:
            metric = current
    if metric is not None and (state.best_metric is None or metric > state.best_metric):
        state.best_metric, state.best_epoch, state.evals_since_best = metric, state.epoch, 0
        if dist.is_main:
            ckpt.save_checkpoint(best_dir, model, {"epoch": state.epoch, select: metric}, {})
    else:
        state.evals_since_best += 1
    return metric


def _finish(
    model: SequenceRecommender,
    split: Split,
    protocol: Protocol,
    cfg: RunConfig,
    device: torch.device,
    dist: Dist,
    state: TrainState,
    run_dir: Path,
    best_dir: Path,
    dataset: SequenceDataset,
) -> dict[str, Any]:
    """Reload the selected checkpoint, evaluate on test, and write ``final.json``."""
    barrier(dist)
    if ckpt.find_checkpoint(best_dir) is not None:
        weights, _, _ = ckpt.load_checkpoint(best_dir)
        model.load_state_dict(weights)
    legacy = cfg.eval.selection == "test" or split.valid is None
    test = run_protocol(model, split.test, protocol, cfg, device, dist)
    final: dict[str, Any] = {
        "run": cfg.name or run_dir.name,
        "protocol": protocol.name,
        "split": split.name,
        "selection": "legacy-best-epoch-on-test" if legacy else "best-valid-then-test",
        "select_metric": cfg.eval.select_metric,
        "best_epoch": state.best_epoch,
        "seed": cfg.seed,
        "test": test,
        "stop_reason": state.stop_reason or "epochs done",
    }
    if split.valid is not None:
        final["valid"] = run_protocol(model, split.valid, protocol, cfg, device, dist)
    if state.legacy_best is not None and not legacy:
        final["test_legacy_best_epoch"] = state.legacy_best
    final["facts"] = scaling_facts(model, cfg, split, state, device, dist)
    if dist.is_main:
        (run_dir / "final.json").write_text(json.dumps(final, indent=1))
    return final


def run_protocol(
    model: SequenceRecommender,
    eval_set,
    protocol: Protocol,
    cfg: RunConfig,
    device: torch.device,
    dist: Dist,
) -> dict[str, float]:
    sums = evaluate(
        model,
        eval_set,
        protocol,
        max_len=cfg.model.max_len,
        batch_size=cfg.eval.batch_size,
        ks=cfg.eval.ks,
        device=device,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    return sums.all_reduce().to_dict() if dist.enabled else sums.to_dict()


def scaling_facts(
    model: SequenceRecommender,
    cfg: RunConfig,
    split: Split,
    state: TrainState,
    device: torch.device,
    dist: Dist,
) -> dict[str, Any]:
    """The numbers a scaling law is fitted against, recorded with every run."""
    counts = count_parameters(model)
    mean_len = float(np.minimum(split.train.lengths - 1, cfg.model.max_len).clip(min=0).mean())
    flops = flops_per_token(cfg.model, split.train.num_items, max(1, round(mean_len)))
    return {
        "non_embedding_params": counts.non_embedding,
        "embedding_params": counts.embedding,
        "flops_per_token_forward": flops.forward,
        "flops_per_token_training": flops.training,
        "tokens": state.tokens,
        "compute_flops": flops.training * state.tokens,
        "train_interactions": int(split.train.num_interactions),
        "data_fraction": cfg.data.fraction,
        "epochs": state.epoch,
        "steps": state.step,
        "wall_time_s": round(state.wall_time_s, 3),
        "peak_memory_mib": round(peak_memory_mib(device), 1),
        "hardware": hardware(device, dist),
    }


def peak_memory_mib(device: torch.device) -> float:
    """Peak GPU memory allocated on CUDA; elsewhere the process's peak resident set size
    (which includes the Python process and the dataset, not only tensors)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def hardware(device: torch.device, dist: Dist) -> dict[str, Any]:
    info: dict[str, Any] = {
        "device": str(device),
        "world_size": dist.world_size,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


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


def _save(directory: Path, model, optimizer, state: TrainState, sampler: torch.Generator) -> None:
    meta, tensors = ckpt.optimizer_to_flat(optimizer)
    tensors.update(ckpt.rng_state({"sampler": sampler}))
    ckpt.save_checkpoint(
        directory, model, {"train_state": asdict(state), "optimizer": meta}, tensors
    )


def _restore(
    directory: Path, model, optimizer, switch: OptimizerSwitch, sampler, cfg: RunConfig, device
):
    weights, meta, tensors = ckpt.load_checkpoint(directory)
    model.load_state_dict(weights)
    state = TrainState(**meta["train_state"])
    switch.load_state_dict(state.switch) if state.switch else None
    if switch.switched:
        optimizer = switch.switch(model, cfg.optim)
    ckpt.optimizer_from_flat(
        optimizer,
        meta["optimizer"],
        {k: v.to(device) for k, v in tensors.items() if k.startswith("optim.")},
    )
    ckpt.restore_rng(tensors, {"sampler": sampler})
    return state, optimizer


def _total_steps(cfg: RunConfig, train_set: SequenceDataset, steps_per_epoch: int) -> int:
    steps = cfg.train.epochs * steps_per_epoch
    if cfg.train.max_tokens is not None:
        per_epoch = max(
            1, int(np.minimum(train_set.lengths - 1, cfg.model.max_len).clip(min=0).sum())
        )
        steps = min(steps, math.ceil(cfg.train.max_tokens / per_epoch * steps_per_epoch))
    return max(1, math.ceil(steps / cfg.optim.grad_accum))


def _global_mean(total: float, count: int, dist: Dist) -> float:
    t = all_reduce_sum(torch.tensor([total, float(count)], dtype=torch.float64), dist)
    return float(t[0] / max(t[1], 1.0))


def _autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def _dataset_record(dataset: SequenceDataset, split: Split) -> dict[str, Any]:
    from recscale.data.stats import dataset_statistics

    return {
        "name": dataset.name,
        "recipe": dataset.recipe,
        "statistics": dataset_statistics(dataset),
        "split": split.name,
        "train_users": split.train.num_users,
        "train_interactions": int(split.train.num_interactions),
    }


def _tensorboard(cfg: RunConfig, run_dir: Path, dist: Dist):
    if not (cfg.train.tensorboard and dist.is_main):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise RecscaleError(
            "train.tensorboard=true needs the tensorboard package: pip install tensorboard"
        ) from None
    return SummaryWriter(str(run_dir / "tensorboard"))


def _log_tensorboard(writer, record: dict[str, Any]) -> None:
    step = record["tokens"]
    writer.add_scalar("train/loss", record["train_loss"], step)
    for part in ("valid", "test"):
        for key, value in record.get(part, {}).items():
            writer.add_scalar(f"{part}/{key}", value, step)
