"""The ranking task (``task: ranking``): train a ranker with binary cross-entropy, select it on
validation AUC, report test AUC / GAUC / logloss.

One batch row is one training user: every position of the history window is an example
(item t given the items before it) and the sampled negatives ride along as candidate tokens,
so one pass scores every example of the row (``data/ranking.py``, ``models/ranker.py``).
Evaluation scores each held-out item and its ``eval_negatives`` never-seen items after the
user's whole history, through M-FALCON for target-aware rankers. The run directory is a
retrieval run's (config.yaml, dataset.json, metrics.jsonl, checkpoints/{last,best},
final.json), so sweeps, the report and ``recscale evaluate`` read it the same way; a killed
run resumes from ``checkpoints/last`` at the epoch it reached. Ranking trains in one process.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recscale.data import ranking as ranking_data
from recscale.data.dataset import SequenceDataset
from recscale.data.splits import EvalSet, Split
from recscale.errors import RecscaleError
from recscale.eval.ranking_metrics import auc, gauc, logloss
from recscale.models import ENCODERS, count_parameters
from recscale.models.falcon import score_candidates
from recscale.models.ranker import RankingInputs, TargetAwareRanker, build_ranker
from recscale.train import checkpoint as ckpt
from recscale.train import loop
from recscale.train.config import RunConfig, load_run_config
from recscale.train.data import prepare_data
from recscale.train.distributed import Dist, pick_device
from recscale.train.facts import hardware, peak_memory_mib
from recscale.train.optim import build_optimizer
from recscale.train.record import ScalingFacts
from recscale.train.result import RunResult

SALTS = {"valid": 1, "test": 2}  # eval negatives differ between valid and test


def build_run_ranker(cfg: RunConfig, dataset: SequenceDataset) -> torch.nn.Module:
    r = cfg.ranking
    return build_ranker(r.ranker, cfg.model, dataset.num_items, r.scorer, r.interleave)


def eval_examples(cfg: RunConfig, dataset: SequenceDataset, eval_set: EvalSet, part: str):
    r = cfg.ranking
    return ranking_data.eval_examples(
        dataset, eval_set, r.eval_negatives, cfg.seed, r.like_threshold, salt=SALTS[part]
    )


def inputs(batch: ranking_data.RankingBatch, device: torch.device) -> RankingInputs:
    b = batch
    tensors = (b.items, b.lengths, b.labels, b.candidates, b.prefix)
    return RankingInputs(*(torch.from_numpy(t) for t in tensors)).to(device)


@torch.no_grad()
def evaluate_ranker(
    model: torch.nn.Module,
    examples: ranking_data.RankingExamples,
    cfg: RunConfig,
    device: torch.device,
) -> dict[str, float]:
    """AUC, GAUC and logloss of ``model`` on ranking examples (one row per user)."""
    model.eval()
    r = cfg.ranking
    logits, labels, users = [], [], []
    batches = ranking_data.eval_batches(
        examples, model.history_window, cfg.eval.batch_size, r.like_threshold
    )
    for batch in batches:
        x = inputs(batch, device)
        if isinstance(model, TargetAwareRanker):
            scores = score_candidates(
                model, x.items, x.lengths, x.labels, x.candidates, r.micro_batch
            )
        else:
            scores = model(x)[1]
        real = batch.candidates != 0
        logits.append(scores.float().cpu().numpy()[real])
        labels.append(batch.candidate_labels[real])
        users.append(np.broadcast_to(batch.users[:, None], real.shape)[real])
    y, s, u = np.concatenate(labels), np.concatenate(logits), np.concatenate(users)
    probs = 1.0 / (1.0 + np.exp(-s.astype(np.float64)))
    metrics = {"auc": auc(y, s), "gauc": gauc(u, y, s), "logloss": logloss(y, probs)}
    # GAUC needs users with both classes; with one example per user there are none.
    return {k: v for k, v in metrics.items() if not math.isnan(v)}


def ranking_facts(
    model: torch.nn.Module,
    cfg: RunConfig,
    split: Split,
    *,
    tokens: int,
    epochs: int,
    steps: int,
    wall_time_s: float,
    device: torch.device,
) -> ScalingFacts:
    """Parameters, and FLOPs per scored token in closed form: the backbone's dense and
    attention multiply-accumulates for target-aware rankers (history length = the window's
    mean), DIN's activation unit over the window for DIN; the scoring network is left out."""
    counts = count_parameters(model)
    window = model.history_window
    mean_len = int(np.minimum(split.train.lengths, window).mean()) or 1
    if isinstance(model, TargetAwareRanker):
        dense, attention = ENCODERS.get(cfg.model.backbone).macs_per_token(cfg.model, mean_len)
        macs = dense + attention
    else:
        macs = mean_len * 3 * cfg.model.dim * cfg.model.dim
    return ScalingFacts(
        non_embedding_params=counts.non_embedding,
        embedding_params=counts.embedding,
        flops_per_token_forward=2 * macs,
        flops_per_token_training=6 * macs,
        tokens=tokens,
        compute_flops=6 * macs * tokens,
        train_interactions=int(split.train.num_interactions),
        data_fraction=cfg.data.fraction,
        epochs=epochs,
        steps=steps,
        wall_time_s=round(wall_time_s, 3),
        peak_memory_mib=round(peak_memory_mib(device), 1),
        hardware=hardware(device, Dist()),
    )


def _loss(model: torch.nn.Module, batch: ranking_data.RankingBatch, device) -> tuple[Any, int]:
    x = inputs(batch, device)
    history_logits, candidate_logits = model(x)
    scored = torch.from_numpy(batch.scored).to(device)
    real = x.candidates != 0
    logits = torch.cat([history_logits[scored], candidate_logits[real]])
    candidate_labels = torch.from_numpy(batch.candidate_labels).to(device)
    labels = torch.cat([x.labels[scored], candidate_labels[real]])
    return F.binary_cross_entropy_with_logits(logits, labels), len(labels)


def train_ranking(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False):
    """Train and evaluate one ranker as ``cfg`` says, writing ``run_dir``."""
    run_dir = Path(run_dir)
    r = cfg.ranking
    device = loop.setup(cfg)
    dataset, split = prepare_data(cfg.data, cfg.seed, keep_ratings=r.like_threshold is not None)
    if split.valid is None or split.test is None:
        raise RecscaleError(
            f"task ranking needs a split with valid and test parts, not {split.name!r}"
        )
    model = build_run_ranker(cfg, dataset).to(device)
    optimizer = build_optimizer(model, cfg.optim)
    state, done = loop.start(cfg, run_dir, model, optimizer, dataset, split, resume)
    if done is not None:
        return RunResult(run_dir, done.to_dict())
    valid = eval_examples(cfg, dataset, split.valid, "valid")

    def train_epoch(epoch: int):
        rng = np.random.default_rng([cfg.seed, 7, epoch])
        window = model.history_window
        batches = ranking_data.train_batches(
            dataset, split, window, r.negative_ratio, cfg.train.batch_size, rng, r.like_threshold
        )
        return (_loss(model, batch, device) for batch in batches)

    loop.run_epochs(
        cfg,
        run_dir,
        model,
        optimizer,
        state,
        train_epoch,
        lambda: evaluate_ranker(model, valid, cfg, device),
        total_steps=loop.total_steps(cfg, split),
        select_metric=r.select_metric,
        lower_is_better=r.select_metric == "logloss",
    )
    valid_best = loop.load_best(model, run_dir)
    test = evaluate_ranker(model, eval_examples(cfg, dataset, split.test, "test"), cfg, device)
    facts = ranking_facts(
        model,
        cfg,
        split,
        tokens=state.tokens,
        epochs=state.epoch,
        steps=state.step,
        wall_time_s=state.wall_time_s,
        device=device,
    )
    return loop.finish(cfg, run_dir, state, r.protocol, r.select_metric, test, valid_best, facts)


_PROTOCOL = re.compile(r"ranking-loo-neg(\d+)(-like[0-9.]+)?")


def evaluate_ranking_run(
    run_dir: str | Path, protocol: str | None = None, split: str = "test", checkpoint: str = "best"
) -> dict[str, Any]:
    """AUC / GAUC / logloss of a finished ranking run; ``protocol`` ``ranking-loo-negK``
    re-scores it against K negatives per held-out item (labels stay the run's)."""
    if split not in SALTS:
        raise RecscaleError(f"split {split!r}: allowed: {', '.join(SALTS)}")
    if checkpoint not in ckpt.RUN_CHECKPOINTS:
        raise RecscaleError(
            f"checkpoint {checkpoint!r}: allowed: {', '.join(ckpt.RUN_CHECKPOINTS)}"
        )
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise RecscaleError(f"{run_dir} is not a run directory (no config.yaml)")
    cfg = load_run_config(run_dir / "config.yaml")
    if protocol is not None:
        match = _PROTOCOL.fullmatch(protocol)
        least = 0 if cfg.ranking.like_threshold is not None else 1
        if match is None or int(match.group(1)) < least:
            raise RecscaleError(
                f"protocol {protocol!r} for a ranking run; allowed: ranking-loo-negK "
                f"(K >= {least}), the run's own is {cfg.ranking.protocol}"
            )
        cfg = cfg.model_copy(
            update={
                "ranking": cfg.ranking.model_copy(update={"eval_negatives": int(match.group(1))})
            }
        )
    target = run_dir / "checkpoints" / checkpoint
    if ckpt.find_checkpoint(target) is None:
        raise RecscaleError(f"{run_dir}: no {checkpoint} checkpoint (was the run started?)")
    keep = cfg.ranking.like_threshold is not None
    dataset, parts = prepare_data(cfg.data, cfg.seed, keep_ratings=keep)
    device = pick_device("auto")
    model = build_run_ranker(cfg, dataset)
    model.load_state_dict(ckpt.load_checkpoint(target)[0])
    eval_set = parts.valid if split == "valid" else parts.test
    examples = eval_examples(cfg, dataset, eval_set, split)
    metrics = evaluate_ranker(model.to(device), examples, cfg, device)
    return {
        "run": str(run_dir),
        "protocol": cfg.ranking.protocol,
        "split": split,
        "checkpoint": checkpoint,
        "metrics": metrics,
    }
