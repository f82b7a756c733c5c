"""Working with finished run directories: reload, re-evaluate, recommend."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recscale.data.dataset import SequenceDataset
from recscale.data.splits import Split
from recscale.data.titles import item_titles
from recscale.errors import RecscaleError
from recscale.eval.evaluator import evaluate_metrics
from recscale.eval.protocols import parse_protocol
from recscale.eval.tasks import TaskContext, evaluate_task, parse_options
from recscale.models import SequenceRecommender
from recscale.train import checkpoint as ckpt
from recscale.train.config import RunConfig, load_run_config
from recscale.train.data import build_run_model, prepare_data
from recscale.train.distributed import pick_device
from recscale.train.generative import evaluate_generative_run
from recscale.train.ranking import evaluate_ranking_run
from recscale.train.state import load_fitting


@dataclass
class LoadedRun:
    cfg: RunConfig
    model: SequenceRecommender
    dataset: SequenceDataset
    split: Split
    device: torch.device


def load_run(run_dir: str | Path, checkpoint: str = "best", device: str = "auto") -> LoadedRun:
    """Rebuild a run's model (``best`` or ``last`` checkpoint) and its data split."""
    run_dir = Path(run_dir)
    if checkpoint not in ckpt.RUN_CHECKPOINTS:
        raise RecscaleError(
            f"checkpoint {checkpoint!r}: allowed: {', '.join(ckpt.RUN_CHECKPOINTS)}"
        )
    if not (run_dir / "config.yaml").is_file():
        raise RecscaleError(f"{run_dir} is not a run directory (no config.yaml)")
    cfg = load_run_config(run_dir / "config.yaml")
    checkpoints = run_dir / "checkpoints"
    target = checkpoints / checkpoint
    if ckpt.find_checkpoint(target) is None:
        target = checkpoints / "last"  # a run stopped before its first evaluation has no best
    if ckpt.find_checkpoint(target, checkpoints / "previous") is None:
        raise RecscaleError(f"{run_dir}: no checkpoint in {checkpoints} (was the run started?)")
    dataset, split = prepare_data(cfg.data, cfg.seed)
    previous = checkpoints / "previous" if target.name == "last" else None
    try:
        weights, _, _ = ckpt.load_checkpoint(target, previous)
    except ckpt.CorruptCheckpoint as err:
        hint = "; try --checkpoint last" if target.name == "best" else ""
        raise ckpt.CorruptCheckpoint(f"{err}{hint}") from None
    dev = pick_device(device)
    cfg, model = build_run_model(cfg, dataset)
    load_fitting(model, weights, f"{target}", "the run's own config.yaml")
    model.to(dev).eval()
    return LoadedRun(cfg, model, dataset, split, dev)


def evaluate_run(
    run_dir: str | Path, protocol: str | None = None, split: str = "test", checkpoint: str = "best"
) -> dict[str, Any]:
    """Metrics of a finished run under ``protocol`` (default: the one it was trained with)."""
    if split not in ("test", "valid"):
        raise RecscaleError(f"split {split!r}: allowed: test, valid")
    config = Path(run_dir) / "config.yaml"
    task = load_run_config(config).task if config.is_file() else "retrieval"
    if task == "ranking":
        return evaluate_ranking_run(run_dir, protocol, split, checkpoint)
    if task == "generative":
        return evaluate_generative_run(run_dir, protocol, split, checkpoint)
    if protocol is not None:
        parse_protocol(protocol)  # a bad name fails before the run is loaded
    run = load_run(run_dir, checkpoint)
    proto = parse_protocol(protocol or run.cfg.eval.protocol)
    eval_set = run.split.valid if split == "valid" else run.split.test
    if eval_set is None:
        raise RecscaleError(f"split {run.split.name!r} has no {split!r} part")
    metrics = evaluate_metrics(
        run.model,
        eval_set,
        proto,
        max_len=run.cfg.model.max_len,
        batch_size=run.cfg.eval.batch_size,
        ks=run.cfg.eval.ks,
        device=run.device,
    )
    return {
        "run": str(run_dir),
        "protocol": proto.name,
        "split": split,
        "checkpoint": checkpoint,
        "metrics": metrics,
    }


def run_task(
    run_dir: str | Path,
    task: str,
    options: Sequence[str] | Mapping[str, Any] | None = None,
    protocol: str | None = None,
    checkpoint: str = "best",
    save: bool = True,
) -> dict[str, Any]:
    """Evaluate a finished run on a challenge task; saved to ``RUN/tasks/<task>.json``."""
    opts = parse_options(task, options)  # a bad option fails before the run is loaded
    if protocol is not None:
        parse_protocol(protocol)
    run = load_run(run_dir, checkpoint)
    ctx = TaskContext(
        model=run.model,
        split=run.split,
        protocol=parse_protocol(protocol or run.cfg.eval.protocol),
        max_len=run.cfg.model.max_len,
        device=run.device,
        ks=tuple(run.cfg.eval.ks),
        batch_size=run.cfg.eval.batch_size,
    )
    result = evaluate_task(ctx, task, opts, run=str(run_dir), checkpoint=checkpoint)
    if save:
        out = Path(run_dir) / "tasks"
        out.mkdir(exist_ok=True)
        tmp = out / f".{task}.json.tmp"
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out / f"{task}.json")
    return result


@torch.no_grad()
def recommend(
    run_dir: str | Path, raw_user: str, k: int = 10, exclude_history: bool = True
) -> list[dict[str, Any]]:
    """Top-``k`` raw item ids for one user, from everything the user has interacted with."""
    if k < 1:
        raise RecscaleError(f"-k {k}: ask for at least 1 item")
    run = load_run(run_dir)
    ds = run.dataset
    matches = (ds.user_ids == str(raw_user)).nonzero()[0]
    if len(matches) == 0:
        raise RecscaleError(f"user {raw_user!r} is not in dataset {ds.name!r}")
    candidates = ds.num_items - (
        len(np.unique(ds.sequence(int(matches[0])))) if exclude_history else 0
    )
    if k > candidates:
        raise RecscaleError(
            f"-k {k}: user {raw_user!r} has only {candidates} items left to recommend"
        )
    user = int(matches[0])
    history = ds.sequence(user)[-run.cfg.model.max_len :]
    times = ds.user_timestamps(user)
    items = torch.as_tensor(history, dtype=torch.long, device=run.device)[None]
    ts = None if times is None else torch.as_tensor(times[-len(history) :], device=run.device)[None]
    ratings = None
    if ds.ratings is not None:
        window = ds.ratings[ds.offsets[user] : ds.offsets[user + 1]][-len(history) :]
        ratings = torch.as_tensor(window, device=run.device)[None]
    lengths = torch.tensor([len(history)], device=run.device)
    hidden = run.model.encode_last(items, ts, lengths, ratings)[0]
    scores = run.model.query_vectors(hidden) @ run.model.item_vectors().T / run.model.temperature
    scores[0] = -torch.inf
    if exclude_history:
        scores[torch.as_tensor(ds.sequence(user), device=run.device)] = -torch.inf
    top = torch.topk(scores, k)
    titles = item_titles(ds, data_dir=run.cfg.data.data_dir)
    out = []
    for rank, (score, item) in enumerate(
        zip(top.values.tolist(), top.indices.tolist(), strict=True), start=1
    ):
        raw = str(ds.item_ids[item])
        out.append({"rank": rank, "item": raw, "title": titles.get(raw), "score": round(score, 4)})
    return out
