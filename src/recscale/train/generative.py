"""The generative task (``task: generative``): semantic-ID retrieval, trained and evaluated.

Each item's text (``data/item_text.py``) is embedded once (``data.text_model``) and
quantised by residual k-means into a tuple of codes (``models/semantic_ids.py``; the run
seed picks the clustering); the tuples and their code usage are saved in the run directory
(``semantic_ids.safetensors``, ``semantic_ids.json``). ``model.backbone`` then reads each
training window's code tokens and learns every next code with cross-entropy. Evaluation
decodes the next item by beam search constrained to real items; the final beams, with the
protocol's excluded items dropped, are the ranked list, so HR@k / NDCG@k / MRR follow the
run's full-ranking protocol (an item outside the beams ranks past every cut-off). The run
directory is a retrieval run's, so sweeps, laws and the report read it the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from recscale.data.batching import eval_batches, train_batches
from recscale.data.dataset import SequenceDataset
from recscale.data.splits import EvalSet, Split
from recscale.errors import RecscaleError
from recscale.eval.evaluator import history_excluded, kept_rows
from recscale.eval.metrics import rank_metrics
from recscale.eval.protocols import parse_protocol
from recscale.models import ENCODERS, count_parameters
from recscale.models.generative import SemanticIdRetriever, beam_search
from recscale.models.semantic_ids import SemanticIds, semantic_ids
from recscale.train import loop
from recscale.train.config import RunConfig
from recscale.train.data import item_text_embeddings, prepare_data
from recscale.train.distributed import Dist, pick_device
from recscale.train.facts import hardware, peak_memory_mib
from recscale.train.optim import build_optimizer
from recscale.train.record import ScalingFacts
from recscale.train.result import RunResult

CODES_FILE, USAGE_FILE = "semantic_ids.safetensors", "semantic_ids.json"


def run_semantic_ids(cfg: RunConfig, dataset: SequenceDataset, run_dir: Path) -> SemanticIds:
    """The run's item codes: read from ``run_dir`` when saved, else built and saved."""
    path = run_dir / CODES_FILE
    if path.is_file():
        return SemanticIds.from_arrays(load_file(path))
    vectors = item_text_embeddings(cfg.data, dataset, progress=cfg.train.progress)
    g = cfg.generative
    sids, usage = semantic_ids(vectors[1:], g.levels, g.codebook_size, seed=cfg.seed)
    usage["level_sizes"] = list(sids.level_sizes)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_file(sids.to_arrays(), path)
    (run_dir / USAGE_FILE).write_text(json.dumps(usage, indent=1) + "\n")
    return sids


def _subset(eval_set: EvalSet, rows: np.ndarray) -> EvalSet:
    return EvalSet(
        eval_set.histories.select_users(rows), eval_set.targets[rows], eval_set.users[rows]
    )


@torch.no_grad()
def evaluate_generative(
    model: SemanticIdRetriever,
    eval_set: EvalSet,
    cfg: RunConfig,
    device: torch.device,
    users: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of the beam's ranked lists on ``eval_set`` (the rows ``users`` when given)."""
    protocol = parse_protocol(cfg.eval.protocol, cfg.seed)
    if users is not None:
        eval_set = _subset(eval_set, users)
    if (kept := kept_rows(eval_set, protocol)) is not None:
        eval_set = _subset(eval_set, kept)
    model.eval()
    ks = cfg.generative.ks(cfg.eval.ks)
    topk, ranks = max(ks), []
    # Every row decodes `beam` continuations over its cached history: bound rows x beams.
    batch_rows = max(1, min(cfg.eval.batch_size, 2048 // cfg.generative.beam))
    for batch in eval_batches(eval_set, cfg.model.max_len, batch_rows):
        items = batch.items.to(device)
        exclude = history_excluded(
            eval_set.histories, batch.rows.numpy(), items, batch.targets.to(device), protocol
        )
        found, _ = beam_search(model, items, cfg.generative.beam, topk, exclude)
        hit = found.cpu() == batch.targets[:, None]
        # 1-based position in the list; a target the beams missed ranks last (so its MRR
        # term is ~0: the run's MRR is a lower bound of a full ranking's).
        miss = torch.tensor(float(model.num_items + 1))
        ranks.append(torch.where(hit.any(1), hit.float().argmax(1) + 1.0, miss))
    per_user = rank_metrics(torch.cat(ranks), ks)
    out = {name: float(values.mean()) for name, values in per_user.items()}
    return {**out, "users": float(len(eval_set))}


def generative_facts(
    model: SemanticIdRetriever, cfg: RunConfig, split: Split, state, device: torch.device
) -> ScalingFacts:
    """Parameters, and FLOPs per code token in closed form at the mean window's tokens."""
    counts = count_parameters(model)
    window = np.minimum(split.train.lengths, cfg.model.max_len + 1)
    tokens = int(window[window >= 2].mean() * model.levels) or 1
    dense, attention = ENCODERS.get(cfg.model.backbone).macs_per_token(model.token_cfg, tokens)
    macs = dense + attention + cfg.model.dim * model.vocab_size  # + the tied output head
    return ScalingFacts(
        non_embedding_params=counts.non_embedding,
        embedding_params=counts.embedding,
        flops_per_token_forward=2 * macs,
        flops_per_token_training=6 * macs,
        tokens=state.tokens,
        compute_flops=6 * macs * state.tokens,
        train_interactions=int(split.train.num_interactions),
        data_fraction=cfg.data.fraction,
        epochs=state.epoch,
        steps=state.step,
        wall_time_s=round(state.wall_time_s, 3),
        peak_memory_mib=round(peak_memory_mib(device), 1),
        hardware=hardware(device, Dist()),
    )


def _windows(batch) -> torch.Tensor:
    """A training batch's windows s[-(max_len+1):] as one right-padded [B, N + 1] tensor."""
    return torch.cat([batch.items[:, :1], batch.targets], dim=1)


def _setup(cfg: RunConfig, run_dir: Path):
    dataset, split = prepare_data(cfg.data, cfg.seed)
    if split.valid is None:
        raise RecscaleError(f"task generative needs a split with a valid part, not {split.name!r}")
    sids = run_semantic_ids(cfg, dataset, run_dir)
    if sids.num_items != dataset.num_items:
        raise RecscaleError(
            f"{run_dir / CODES_FILE} codes {sids.num_items} items; the data has "
            f"{dataset.num_items}: a different dataset or recipe?"
        )
    return dataset, split, SemanticIdRetriever(cfg.model, sids)


def train_generative(cfg: RunConfig, run_dir: str | Path, *, resume: bool = False) -> RunResult:
    """Train and evaluate one semantic-ID retriever as ``cfg`` says, writing ``run_dir``."""
    run_dir = Path(run_dir)
    device = loop.setup(cfg)
    if not resume and (run_dir / CODES_FILE).is_file():
        (run_dir / CODES_FILE).unlink()  # a fresh run quantises afresh
    dataset, split, model = _setup(cfg, run_dir)
    model = model.to(device)
    optimizer = build_optimizer(model, cfg.optim)
    state, done = loop.start(cfg, run_dir, model, optimizer, dataset, split, resume)
    if done is not None:
        return RunResult(run_dir, done.to_dict())
    g = cfg.generative
    valid_rows = None
    if g.valid_users is not None and g.valid_users < len(split.valid):
        pick = np.random.default_rng([cfg.seed, 11]).choice(len(split.valid), g.valid_users, False)
        valid_rows = np.sort(pick)

    def train_epoch(epoch: int):
        batches = train_batches(
            split.train, cfg.model.max_len, cfg.train.batch_size, cfg.seed, epoch
        )
        for batch in batches:
            windows = _windows(batch).to(device)
            # every code token but each row's first is a target
            yield model.loss(windows), int((windows != 0).sum()) * model.levels - len(windows)

    loop.run_epochs(
        cfg,
        run_dir,
        model,
        optimizer,
        state,
        train_epoch,
        lambda: evaluate_generative(model, split.valid, cfg, device, valid_rows),
        total_steps=loop.total_steps(cfg, split),
        select_metric=g.select_metric,
        count_name="code_tokens",
    )
    valid_best = loop.load_best(model, run_dir)
    test = evaluate_generative(model, split.test, cfg, device)
    facts = generative_facts(model, cfg, split, state, device)
    return loop.finish(
        cfg, run_dir, state, cfg.eval.protocol, g.select_metric, test, valid_best, facts
    )


def evaluate_generative_run(
    run_dir: str | Path, protocol: str | None = None, split: str = "test", checkpoint: str = "best"
) -> dict[str, Any]:
    """Metrics of a finished generative run's checkpoint under a full-ranking protocol."""
    from recscale.train import checkpoint as ckpt
    from recscale.train.config import load_run_config

    run_dir = Path(run_dir)
    overrides = [] if protocol is None else [f"eval.protocol={protocol}"]
    cfg = load_run_config(run_dir / "config.yaml", overrides)
    if split not in ("valid", "test"):
        raise RecscaleError(f"split {split!r}: allowed: valid, test")
    target = run_dir / "checkpoints" / checkpoint
    if checkpoint not in ckpt.RUN_CHECKPOINTS or ckpt.find_checkpoint(target) is None:
        raise RecscaleError(f"{run_dir}: no {checkpoint!r} checkpoint; allowed: best, last")
    if not (run_dir / CODES_FILE).is_file():
        raise RecscaleError(f"{run_dir}: no {CODES_FILE} (was the run started?)")
    _, parts, model = _setup(cfg, run_dir)
    model.load_state_dict(ckpt.load_checkpoint(target)[0])
    device = pick_device("auto")
    eval_set = parts.valid if split == "valid" else parts.test
    metrics = evaluate_generative(model.to(device), eval_set, cfg, device)
    return {
        "run": str(run_dir),
        "protocol": cfg.eval.protocol,
        "split": split,
        "checkpoint": checkpoint,
        "metrics": metrics,
    }
