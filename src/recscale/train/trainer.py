"""The training recipe: ``train(cfg, run_dir)`` reads as its named steps.

``setup`` builds data, model, loss and optimizer (or restores them from the last
checkpoint); ``train_epoch`` runs one pass over the training users; ``evaluate_and_select``
scores the model and returns the new checkpoint selection; ``finish`` reloads the selected
weights, evaluates test and writes ``final.json``. Loss is put on every position of every
sequence (never one sample per prefix); :class:`~recscale.train.step.OptimizerStep` owns
gradient normalisation, the learning-rate schedule and clipping.

Faults lose little: ``checkpoints/last`` is written at every epoch end and every
``train.checkpoint_every_steps`` steps / ``checkpoint_every_minutes`` minutes (the one it
replaces kept as ``checkpoints/previous``), and a resume from a mid-epoch checkpoint skips
the micro-batches already done, so it is bit-identical to a run never stopped. A
non-finite loss or weights stop the run without overwriting the last good checkpoint;
``final.json`` records the stop as ``failure``.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from recscale.config import dump_yaml
from recscale.data import batching
from recscale.data.splits import EvalSet
from recscale.eval.evaluator import evaluate_metrics
from recscale.eval.protocols import parse_protocol
from recscale.models.attention import batch_attend
from recscale.train import checkpoint as ckpt
from recscale.train import distributed
from recscale.train.config import RunConfig, check_run_inputs
from recscale.train.data import build_run_model, prepare_data
from recscale.train.distributed import Dist, all_reduce_sum, barrier, pick_device
from recscale.train.epoch_log import (
    append_record,
    log_tensorboard,
    tensorboard_writer,
    trim_metrics,
)
from recscale.train.facts import dataset_record, scaling_facts
from recscale.train.faults import CheckpointClock, all_agree, fault_message
from recscale.train.generative import train_generative
from recscale.train.losses import behaviour_loss, build_loss, training_catalogue
from recscale.train.optim import OptimizerSwitch, build_optimizer, lr_factor
from recscale.train.parallel import PARALLELISMS, save_best
from recscale.train.preflight import check_split
from recscale.train.ranking import train_ranking
from recscale.train.record import RunRecord, find_run_record, write_run_record
from recscale.train.result import RunResult, seed_everything
from recscale.train.selection import evaluate_and_select, is_legacy_selection
from recscale.train.state import TrainState, check_resume_position, init_weights, weights_finite
from recscale.train.step import OptimizerStep, optimizer_steps


def train(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False) -> RunResult:
    """Train one model as ``cfg`` says, writing everything into ``run_dir``."""
    if cfg.task == "ranking":
        return train_ranking(cfg, Path(run_dir), resume=resume)
    if cfg.task == "generative":
        return train_generative(cfg, Path(run_dir), resume=resume)
    run = Recipe.setup(cfg, Path(run_dir), resume)
    try:
        return run.done if run.done is not None else _train(run)
    finally:
        dist = getattr(run, "dist", None)
        if dist is not None and dist.solo_group:
            distributed.shutdown(dist)


def _train(run: Recipe) -> RunResult:
    state, cfg = run.state, run.cfg
    for epoch in range(state.epoch, cfg.train.epochs if not state.finished else state.epoch):
        train_loss = run.train_epoch(epoch)
        if state.failure is not None:
            break
        state.epoch = epoch + 1
        state.wall_time_s = run.wall_time()
        record: dict[str, Any] = {
            "epoch": state.epoch,
            "step": state.step,
            "tokens": state.tokens,
            "train_loss": train_loss,
            "lr": run.optimizer.param_groups[0]["lr"],
            "wall_time_s": round(state.wall_time_s, 3),
        }
        last_epoch = state.stop_reason is not None or state.epoch == cfg.train.epochs
        if state.epoch % cfg.train.eval_every == 0 or last_epoch:
            run.evaluate_epoch(epoch, record)
        run.end_epoch(record)
        if state.stop_reason is not None:
            break
    return run.finish()


class Recipe:
    """One run's working set; each method is one named step of :func:`train`."""

    def __init__(self, **parts: Any) -> None:
        self.done: RunResult | None = None
        self.__dict__.update(parts)

    # ------------------------------------------------------------------ setup

    @classmethod
    def setup(cls, cfg: RunConfig, run_dir: Path, resume: bool) -> Recipe:
        check_run_inputs(cfg)
        if resume and (done := find_run_record(run_dir)) is not None and done.failure is not None:
            return cls(done=RunResult(run_dir, done.to_dict()))  # stopped on a fault: its result
        device_kind = (
            "cuda" if cfg.train.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        )
        strategy = PARALLELISMS.get(cfg.train.parallelism)
        dist = distributed.init_distributed(device_kind, need_group=strategy.sharded)
        device = pick_device(cfg.train.device, dist.local_rank)
        parallel = strategy(dist, device)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        seed_everything(cfg.seed)

        dataset, split = prepare_data(cfg.data, cfg.seed)
        check_split(split, dataset, parse_protocol(cfg.eval.protocol))
        cfg, model = build_run_model(cfg, dataset)
        checkpoints = run_dir / "checkpoints"
        last_dir, previous_dir = checkpoints / "last", checkpoints / "previous"
        resuming = resume and ckpt.find_checkpoint(last_dir, previous_dir) is not None
        if cfg.train.init_from and not resuming:
            init_weights(model, cfg.train.init_from)
        model = parallel.wrap(model.to(device))
        optimizer = build_optimizer(model, cfg.optim)
        switch = OptimizerSwitch(cfg.optim.switch_to_sgd)
        # Negatives are drawn from their own generator so dropout and sampling stay independent.
        sampler = torch.Generator().manual_seed(cfg.seed + 1 + dist.rank)
        run = cls(
            cfg=cfg,
            run_dir=run_dir,
            dist=dist,
            parallel=parallel,
            device=device,
            dataset=dataset,
            split=split,
            model=model,
            loss_fn=build_loss(cfg.loss, **training_catalogue(cfg, split)),
            optimizer=optimizer,
            switch=switch,
            protocol=parse_protocol(cfg.eval.protocol),
            sampler=sampler,
            state=TrainState(),
            last_dir=last_dir,
            previous_dir=previous_dir,
            best_dir=checkpoints / "best",
        )
        if resuming:
            run.state, run.optimizer = parallel.restore(
                last_dir, previous_dir, model, optimizer, switch, sampler, cfg.optim
            )
            check_resume_position(run.state, cfg.train.batch_size * dist.world_size, last_dir)
            final = find_run_record(run_dir)
            if run.state.finished and final is not None:
                if run.state.stop_reason is not None or run.state.epoch >= cfg.train.epochs:
                    run.done = RunResult(run_dir, final.to_dict())
                    return run
                run.state.finished = False  # asked for more epochs than the finished run had
            if dist.is_main:
                # Records of epochs after the checkpoint are redone; a torn last line goes.
                trim_metrics(run_dir / "metrics.jsonl", run.state.epoch)
        elif dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "metrics.jsonl").write_text("")
        if dist.is_main:
            dump_yaml(cfg, run_dir / "config.yaml")
            (run_dir / "dataset.json").write_text(
                json.dumps(dataset_record(dataset, split), indent=1)
            )

        run.steps_per_epoch = math.ceil(
            split.train.num_users / (cfg.train.batch_size * dist.world_size)
        )
        total_steps = optimizer_steps(
            split.train,
            cfg.model.max_len,
            cfg.train.epochs,
            run.steps_per_epoch,
            cfg.train.max_tokens,
            cfg.optim.grad_accum,
        )
        run.stepper = OptimizerStep(
            [p for p in model.parameters() if p.requires_grad],
            cfg.optim.lr,
            partial(lr_factor, total_steps=total_steps, cfg=cfg.optim),
            cfg.optim.grad_clip,
            dist,
            parallel.sync_gradients,
        )
        run.writer = tensorboard_writer(cfg.train.tensorboard and dist.is_main, run_dir)
        run.autocast = autocast(cfg.train.precision, device)
        run.started = time.perf_counter() - run.state.wall_time_s
        run.clock = CheckpointClock(
            cfg.train.checkpoint_every_steps, cfg.train.checkpoint_every_minutes, dist
        )
        return run

    def wall_time(self) -> float:
        return time.perf_counter() - self.started

    # ------------------------------------------------------------------ one epoch

    def train_epoch(self, epoch: int) -> float:
        """One pass over this rank's training users (from ``state.micro`` on, after a
        mid-epoch resume); returns the global mean train loss."""
        cfg, state, dist = self.cfg, self.state, self.dist
        self.model.train()
        done = state.micro
        epoch_loss, epoch_count, pending = state.epoch_loss, state.epoch_count, 0
        batches = batching.train_batches(
            self.split.train,
            cfg.model.max_len,
            cfg.train.batch_size,
            cfg.seed,
            epoch,
            rank=dist.rank,
            world_size=dist.world_size,
            bucket_batches=cfg.train.bucket_batches,
            pack=cfg.train.pack_batches,
        )
        # Steps are optimizer steps; the bar counts micro-batches.
        bar = tqdm(
            itertools.islice(batches, done, None),
            initial=done,
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
            disable=not (cfg.train.progress and dist.is_main),
            leave=False,
            unit="batch",
        )
        tick, tick_tokens, finite = time.perf_counter(), 0, True
        for micro, batch in enumerate(bar, start=done + 1):
            loss_sum, count = self.loss_step(batch)
            loss_sum.backward()
            value = float(loss_sum.detach())
            finite = finite and math.isfinite(value)
            epoch_loss += value
            epoch_count += int(count)
            pending += int(count)
            if micro % cfg.optim.grad_accum != 0:
                continue
            if not all_agree(finite, dist):
                self.fail(f"non-finite training loss in epoch {epoch + 1}, step {state.step + 1}")
                break
            tick_tokens += self.optimizer_step(pending)
            pending = 0
            state.micro, state.epoch_loss, state.epoch_count = micro, epoch_loss, epoch_count
            if dist.is_main and state.step % 10 == 0:
                rate = tick_tokens / max(time.perf_counter() - tick, 1e-9)
                bar.set_postfix(
                    loss=f"{epoch_loss / max(epoch_count, 1):.4f}", tok_s=f"{rate:,.0f}"
                )
            if cfg.train.max_tokens is not None and state.tokens >= cfg.train.max_tokens:
                state.stop_reason = "token budget reached"
                break
            if self.clock.due(state.step) and not self.save_last():
                break
        if pending and state.failure is None:
            if all_agree(finite, dist):
                self.optimizer_step(pending)
            else:
                self.fail(f"non-finite training loss in epoch {epoch + 1}, step {state.step + 1}")
        bar.close()
        state.micro, state.epoch_loss, state.epoch_count = 0, 0.0, 0
        if state.failure is None and not self.weights_finite():
            self.fail(f"non-finite weights after epoch {epoch + 1}, step {state.step}")
        return global_mean(epoch_loss, epoch_count, dist)

    def fail(self, reason: str) -> None:
        """Stop on a fault; ``last`` keeps the last good state."""
        self.optimizer.zero_grad(set_to_none=True)
        self.state.failure = self.state.stop_reason = fault_message(reason)

    def save_last(self) -> bool:
        """Checkpoint the state as ``last`` (the one before becomes ``previous``); refuses,
        and fails the run, when the weights are no longer finite."""
        if not self.weights_finite():
            self.fail(f"non-finite weights after step {self.state.step}")
            return False
        state = self.state
        state.wall_time_s, state.switch = self.wall_time(), self.switch.state_dict()
        state.global_batch = self.cfg.train.batch_size * self.dist.world_size
        self.parallel.save(
            self.last_dir, self.model, self.optimizer, state, self.sampler, self.previous_dir
        )
        self.clock.saved()
        return True

    def weights_finite(self) -> bool:
        return all_agree(weights_finite(self.model), self.dist)

    def loss_step(self, batch: batching.Batch) -> tuple[torch.Tensor, torch.Tensor | int]:
        """Forward one micro-batch: (summed loss, number of target positions)."""
        batch = batching.replace_inputs(
            batch, self.cfg.train.input_noise, self.dataset.num_items, self.sampler
        )
        batch = batching.to_device(batch, self.device)
        model = self.model
        with self.autocast:
            hidden = model.encode(
                batch.items, batch.timestamps, batch.lengths, batch.ratings, batch_attend(batch)
            )
            loss_sum, count = self.loss_fn(model, hidden, batch.targets, self.sampler)
            if model.behaviour_head is not None:
                loss_sum = loss_sum + self.cfg.loss.behaviour_weight * behaviour_loss(
                    model, hidden, batch.targets, batch.target_ratings
                )
        return loss_sum, count

    def optimizer_step(self, local_count: int) -> int:
        count = self.stepper(
            self.optimizer, self.state.step, local_count, scheduled=not self.switch.switched
        )
        self.state.step += 1
        self.state.tokens += count
        return count

    # ------------------------------------------------------------------ evaluate and select

    def evaluate_epoch(self, epoch: int, record: dict[str, Any]) -> None:
        """Evaluate, keep the best checkpoint, and apply the switch and stopping rules."""
        cfg, state = self.cfg, self.state
        # One gathering of a sharded model for valid and test alike.
        with self.parallel.gathered(self.model):
            result = evaluate_and_select(
                self.evaluate_on, self.split, cfg.eval, state.selection, state.epoch
            )
        record.update(result.scores)
        state.select(result.selection)
        if result.improved:
            meta = {"epoch": state.epoch, cfg.eval.select_metric: result.metric}
            save_best(self.parallel, self.best_dir, self.model, meta, self.dist)
        if self.switch.should_switch(epoch, result.metric):
            self.optimizer = self.switch.switch(self.model, cfg.optim)
            record["optimizer_switched_to"] = "sgd"
        if cfg.train.patience is not None and state.evals_since_best >= cfg.train.patience:
            state.stop_reason = (
                f"early stop: no gain in {cfg.eval.select_metric} "
                f"for {cfg.train.patience} evaluations"
            )

    def evaluate_on(self, eval_set: EvalSet) -> dict[str, float]:
        """The model's metrics on ``eval_set`` (inside ``parallel.gathered`` under FSDP)."""
        return evaluate_metrics(
            self.model,
            eval_set,
            self.protocol,
            max_len=self.cfg.model.max_len,
            batch_size=self.cfg.eval.batch_size,
            ks=self.cfg.eval.ks,
            device=self.device,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )

    def end_epoch(self, record: dict[str, Any]) -> None:
        """Log the epoch and checkpoint it as ``last``."""
        if self.dist.is_main:
            append_record(self.run_dir / "metrics.jsonl", record)
            if self.writer is not None:
                log_tensorboard(self.writer, record)
        self.save_last()
        barrier(self.dist)

    # ------------------------------------------------------------------ finish

    def finish(self) -> RunResult:
        """Reload the selected checkpoint, evaluate on test, and write ``final.json``."""
        cfg, state, dist, split = self.cfg, self.state, self.dist, self.split
        # Mark finished before the best weights are swapped in, so "last" keeps the last ones;
        # after a fault "last" stays the last good state.
        state.finished = True
        if state.failure is None:
            self.save_last()
        if dist.is_main and self.writer is not None:
            self.writer.close()
        barrier(dist)
        has_best = ckpt.find_checkpoint(self.best_dir) is not None
        if has_best:
            weights, _, _ = ckpt.load_checkpoint(self.best_dir)
            self.parallel.load_full_weights(self.model, weights)
        legacy = is_legacy_selection(cfg.eval, split)
        # After a fault only a selected checkpoint has weights worth scoring.
        scored = state.failure is None or has_best
        test, valid = {}, None
        if scored:
            with self.parallel.gathered(self.model):
                test = self.evaluate_on(split.test)
                valid = self.evaluate_on(split.valid) if split.valid is not None else None
        record = RunRecord(
            run=cfg.name or self.run_dir.name,
            protocol=self.protocol.name,
            split=split.name,
            selection="legacy-best-epoch-on-test" if legacy else "best-valid-then-test",
            select_metric=cfg.eval.select_metric,
            best_epoch=state.best_epoch,
            seed=cfg.seed,
            test=test,
            stop_reason=state.stop_reason or "epochs done",
            valid=valid,
            failure=state.failure,
            test_legacy_best_epoch=None if legacy else state.legacy_best,
            facts=scaling_facts(
                self.model,
                cfg.model,
                split.train,
                tokens=state.tokens,
                epochs=state.epoch,
                steps=state.step,
                wall_time_s=state.wall_time_s,
                data_fraction=cfg.data.fraction,
                device=self.device,
                dist=dist,
            ),
        )
        if dist.is_main:
            write_run_record(record, self.run_dir)
        barrier(dist)
        return RunResult(self.run_dir, record.to_dict())


def global_mean(total: float, count: int, dist: Dist) -> float:
    t = all_reduce_sum(torch.tensor([total, float(count)], dtype=torch.float64), dist)
    return float(t[0] / max(t[1], 1.0))


def autocast(precision: str, device: torch.device):
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
