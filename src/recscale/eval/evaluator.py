"""Evaluate a sequence recommender on an ``EvalSet`` under a named protocol.

The user's query is the hidden state at its last input position. Full ranking never
builds the ``[users, items]`` score matrix: items are scored in fixed-size chunks and
each chunk adds the number of items that beat the target, which gives exact ranks with
memory ``O(batch * chunk)``. The same pass keeps a running log-sum-exp over all items, so
the full-softmax test cross-entropy (the loss scaling laws are fitted to, Zhang et al.
2023) comes for free.

Scores are computed in fp32 with autocast off, whatever the caller's precision. The
target's own score comes from a matrix product of the same shape as the item chunks, so
it is bit-for-bit the value the chunks compare against (a separately computed dot
product can differ in the last bit, or by far more under TF32, and flip ties).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from recscale.data.batching import eval_batches
from recscale.data.splits import EvalSet
from recscale.errors import RecscaleError
from recscale.eval.metrics import DEFAULT_KS, MetricSums, rank_metrics, ranks_from_scores
from recscale.eval.protocols import Protocol, parse_protocol, sampled_candidates
from recscale.models.contract import Recommender
from recscale.numerics import logsumexp

# Items scored at once. Each chunk's scores take about seven passes (mask, log-sum-exp,
# compare, count), so a [256, 1024] fp32 tile (1 MiB) that stays in cache beats one wide
# product: measured at 1 thread, 1,024 against 32,768 is 1.3x faster at 3.4K items, 2.0x at
# 12K and 4.1x at 100K (benchmarks/bench_eval_chunk.py, ledger row eval-scan-chunk).
DEFAULT_ITEM_CHUNK = 1024


@torch.no_grad()
def evaluate(
    model: Recommender,
    eval_set: Any,
    protocol: Protocol | str,
    *,
    max_len: int,
    batch_size: int = 256,
    ks: Iterable[int] = DEFAULT_KS,
    device: torch.device | str | None = None,
    item_chunk: int = DEFAULT_ITEM_CHUNK,
    rank: int = 0,
    world_size: int = 1,
    compute_loss: bool = True,
    mrr_cutoff: int | None = None,
    by_length: bool = True,
) -> MetricSums:
    """Metric sums over this rank's shard of ``eval_set``.

    Args:
        model: a ``SequenceRecommender`` (``encode``, ``query_vectors``, ``item_vectors``,
            ``temperature``); it is put in eval mode and restored afterwards.
        eval_set: a ``recscale.data.splits.EvalSet`` (``histories``, ``targets``, ``users``).
        protocol: a :class:`Protocol` or its name (``full``, ``full-no-exclude``, ``full-window``,
            ``sampled-N``).
        max_len: input window: the last ``max_len`` history items.
        ks: cut-offs for ``hr@k`` and ``ndcg@k``.
        device: where to compute; the model's device when None.
        item_chunk: items scored at once; scratch memory is about ``10 * batch_size * item_chunk``
            bytes.
        rank, world_size: evaluate only this rank's users.
        compute_loss: add ``loss``, the full-softmax cross-entropy of the target over items
            ``1..num_items`` with no history exclusion, in nats.
        mrr_cutoff: None for exact MRR; 2500 for the HSTU code's capped reading.
        by_length: batch the users longest history first (little padding); False keeps
            row order (the reference; the metrics do not depend on it).

    Returns:
        Sums and counts of ``hr@k``, ``ndcg@k``, ``mrr`` (and ``loss``) for this shard only;
        call ``.all_reduce()`` under ``torchrun`` before ``.to_dict()``.
    """
    protocol = parse_protocol(protocol)
    ks = tuple(sorted(set(ks)))
    if not ks or ks[0] < 1:
        raise RecscaleError(f"metric cut-offs ks must be integers >= 1, got {list(ks)}")
    names = list(rank_metrics(torch.ones(1, dtype=torch.long), ks))
    sums = MetricSums().declare(names + (["loss"] if compute_loss else []))
    batches = _scored_batches(
        model,
        eval_set,
        protocol,
        max_len,
        batch_size,
        device,
        item_chunk,
        rank,
        world_size,
        compute_loss,
        by_length,
    )
    for _, ranks, loss in batches:
        sums.add_ranks(ranks, ks, mrr_cutoff)
        if compute_loss:
            sums.add("loss", loss)
    return sums


def evaluate_metrics(
    model: Recommender,
    eval_set: Any,
    protocol: Protocol,
    *,
    max_len: int,
    batch_size: int,
    ks: Iterable[int],
    device: torch.device,
    rank: int = 0,
    world_size: int = 1,
) -> dict[str, float]:
    """Metrics of ``eval_set`` under ``protocol``, summed over every rank when
    ``world_size > 1`` (each rank evaluates its shard)."""
    sums = evaluate(
        model,
        eval_set,
        protocol,
        max_len=max_len,
        batch_size=batch_size,
        ks=ks,
        device=device,
        rank=rank,
        world_size=world_size,
    )
    return (sums.all_reduce() if world_size > 1 else sums).to_dict()


@torch.no_grad()
def user_ranks(
    model: Recommender,
    eval_set: Any,
    protocol: Protocol | str,
    *,
    max_len: int,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    item_chunk: int = DEFAULT_ITEM_CHUNK,
    compute_loss: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-row ranks (``int64 [U]``, in ``eval_set`` order) and, when asked, per-row
    full-softmax losses: what group-wise metrics (popularity groups, history lengths) are
    computed from, with exactly the ranking rules of :func:`evaluate`. Rows the protocol
    leaves out (``full-filter-seen``) keep rank 0."""
    protocol = parse_protocol(protocol)
    ranks = np.zeros(len(eval_set), dtype=np.int64)
    losses = np.zeros(len(eval_set), dtype=np.float64) if compute_loss else None
    batches = _scored_batches(
        model, eval_set, protocol, max_len, batch_size, device, item_chunk, 0, 1, compute_loss
    )
    for rows, batch_ranks, loss in batches:
        ranks[rows] = batch_ranks.cpu().numpy()
        if losses is not None:
            losses[rows] = loss.double().cpu().numpy()
    return ranks, losses


def _scored_batches(
    model: Recommender,
    eval_set: Any,
    protocol: Protocol,
    max_len: int,
    batch_size: int,
    device: torch.device | str | None,
    item_chunk: int,
    rank: int,
    world_size: int,
    compute_loss: bool,
    by_length: bool = True,
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor | None]]:
    """``(rows, ranks [B], loss [B] | None)`` per batch of this rank's shard."""
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    kept = kept_rows(eval_set, protocol)
    if kept is not None:
        eval_set = EvalSet(
            eval_set.histories.select_users(kept), eval_set.targets[kept], eval_set.users[kept]
        )
    histories = eval_set.histories
    num_items = int(histories.num_items)
    was_training = model.training
    model.eval()
    try:
        with _no_autocast(device):
            table = _ItemTable(model.item_vectors().detach().float(), item_chunk, batch_size)
        batches = eval_batches(
            eval_set, max_len, batch_size, rank=rank, world_size=world_size, by_length=by_length
        )
        for batch in batches:
            items = batch.items.to(device)
            targets = batch.targets.to(device)
            query = _queries(model, batch, device)
            with _no_autocast(device):
                rows = batch.rows.cpu().numpy()
                full = protocol.kind == "full"
                ranks = loss = None
                if full or compute_loss:
                    excluded = (
                        _excluded(histories, rows, items, targets, protocol) if full else None
                    )
                    ranks, loss = table.scan(
                        query,
                        targets,
                        excluded,
                        float(model.temperature),
                        rank=full,
                        loss=compute_loss,
                    )
                if not full:
                    ranks = _sampled_ranks(
                        query, table.vectors, eval_set, rows, num_items, protocol
                    )
                yield (rows if kept is None else kept[rows]), ranks, loss
    finally:
        model.train(was_training)


def kept_rows(eval_set: EvalSet, protocol: Protocol) -> np.ndarray | None:
    """The rows ``protocol`` evaluates (sorted indices), or None for every row."""
    if not (protocol.drop_seen_targets or protocol.drop_cold_targets):
        return None
    dropped = np.zeros(len(eval_set), dtype=bool)
    if protocol.drop_seen_targets:
        dropped |= targets_in_history(eval_set)
    if protocol.drop_cold_targets:
        dropped |= ~np.isin(eval_set.targets, eval_set.histories.items)
    return np.flatnonzero(~dropped)


def targets_in_history(eval_set: EvalSet) -> np.ndarray:
    """``bool [U]``: whether each user's target already occurs in their history."""
    h = eval_set.histories
    lengths = np.diff(h.offsets)
    hit = h.items == np.repeat(eval_set.targets, lengths)
    seen = np.zeros(len(lengths), dtype=bool)
    nonempty = lengths > 0
    seen[nonempty] = np.logical_or.reduceat(hit, h.offsets[:-1][nonempty])
    return seen


@torch.no_grad()
def top_items(
    model: Recommender,
    eval_set: Any,
    *,
    max_len: int,
    k: int = 10,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    item_chunk: int = DEFAULT_ITEM_CHUNK,
    exclude_history: bool = True,
) -> np.ndarray:
    """``int64 [U, k]`` the model's top-``k`` items per row, best first, never padding and,
    by default, never an item of the row's history. Chunked over items like ranking."""
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    histories = eval_set.histories
    out = np.zeros((len(eval_set), k), dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        with _no_autocast(device):
            table = _ItemTable(model.item_vectors().detach().float(), item_chunk, batch_size)
        for batch in eval_batches(eval_set, max_len, batch_size):
            query = _queries(model, batch, device)
            rows = batch.rows.cpu().numpy()
            with _no_autocast(device):
                masked = torch.zeros(len(rows), 1, dtype=torch.long, device=device)
                if exclude_history:
                    masked = torch.cat([masked, padded_histories(histories, rows, device)], 1)
                best_v = torch.full((len(rows), k), -torch.inf, device=device)
                best_i = torch.zeros((len(rows), k), dtype=torch.long, device=device)
                row_index = torch.arange(len(rows), device=device).unsqueeze(1)
                for lo, hi, block in table.chunks:
                    scores = (query @ block.T)[:, : hi - lo]
                    local = masked - lo
                    inside = (local >= 0) & (local < hi - lo)
                    scores[row_index.expand_as(local)[inside], local[inside]] = -torch.inf
                    values = torch.cat([best_v, scores], 1)
                    ids = torch.cat(
                        [best_i, torch.arange(lo, hi, device=device).expand_as(scores)], 1
                    )
                    best_v, pos = values.topk(k, dim=1)
                    best_i = ids.gather(1, pos)
            out[rows] = best_i.cpu().numpy()
    finally:
        model.train(was_training)
    return out


def _queries(model: Recommender, batch: Any, device: torch.device) -> torch.Tensor:
    """``[B, D]`` fp32 query vectors: the hidden state at each row's last input position."""
    lengths = batch.lengths.to(device)
    timestamps = None if batch.timestamps is None else batch.timestamps.to(device)
    inputs = [batch.items.to(device), timestamps, lengths]
    if getattr(model, "behaviour_emb", None) is not None:  # a multi-behaviour model
        inputs.append(None if batch.ratings is None else batch.ratings.to(device))
    encode_last = getattr(model, "encode_last", None)  # optional in the contract
    if encode_last is not None:
        last_hidden = encode_last(*inputs)
    else:
        last = (lengths - 1).clamp(min=0)
        last_hidden = model.encode(*inputs)[torch.arange(len(lengths), device=device), last]
    with _no_autocast(device):
        return model.query_vectors(last_hidden.float()).float()


def padded_histories(histories: Any, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """``[B, longest]`` the rows' whole histories, right-padded with 0."""
    seqs = [histories.sequence(int(r)) for r in rows]
    padded = np.zeros((len(seqs), max((len(s) for s in seqs), default=0)), dtype=np.int64)
    for i, s in enumerate(seqs):
        padded[i, : len(s)] = s
    return torch.from_numpy(padded).to(device)


class _ItemTable:
    """Item vectors split into equal-shape chunks; the last chunk is zero-padded."""

    def __init__(self, vectors: torch.Tensor, chunk: int, batch_size: int) -> None:
        self.vectors = vectors  # [num_items + 1, D], row 0 = padding
        rows = vectors.shape[0]
        # Chunks at least as wide as a batch, so one chunk-shaped product scores the targets.
        self.width = max(min(chunk, rows), batch_size)
        self.chunks: list[tuple[int, int, torch.Tensor]] = []
        for lo in range(0, rows, self.width):
            hi = min(lo + self.width, rows)
            block = vectors[lo:hi]
            if hi - lo < self.width:
                block = torch.cat([block, block.new_zeros(self.width - (hi - lo), block.shape[1])])
            self.chunks.append((lo, hi, block))

    def target_scores(self, query: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        block = query.new_zeros(self.width, query.shape[1])
        block[: len(targets)] = self.vectors[targets]
        scores = query @ block.T
        return scores.diagonal()[: len(targets)].clone()

    def scan(
        self,
        query: torch.Tensor,
        targets: torch.Tensor,
        excluded: torch.Tensor | None,
        temperature: float,
        *,
        rank: bool,
        loss: bool,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """One pass over the items: ranks (items beating the target, ``excluded`` [B, L] left
        out) and the full-softmax cross-entropy over items ``1..num_items``."""
        b = len(targets)
        target = self.target_scores(query, targets)
        threshold = target.unsqueeze(1)
        beaten = torch.zeros(b, dtype=torch.long, device=query.device)
        lse = torch.full((b,), -torch.inf, device=query.device)
        row_index = torch.arange(b, device=query.device).unsqueeze(1)
        for lo, hi, block in self.chunks:
            scores = query @ block.T  # [B, width]
            # Item 0 and the zero rows after the catalogue's end score -inf: no column slice,
            # so every pass below runs over contiguous rows (each is slower over a column slice).
            scores[:, hi - lo :] = -torch.inf
            if lo == 0:
                scores[:, 0] = -torch.inf
            if loss:
                lse = torch.logaddexp(lse, logsumexp(scores, 1.0 / temperature))
            if rank:
                if excluded is not None:
                    local = excluded - lo
                    inside = (local >= 0) & (local < hi - lo)
                    scores[row_index.expand_as(local)[inside], local[inside]] = -torch.inf
                # Items not below the target beat it: ties and NaN count against it. An
                # int32 count of the complement skips a bool->int64 copy of [B, width].
                below = (scores < threshold).sum(dim=1, dtype=torch.int32)
                beaten += scores.shape[1] - below
        ranks = None
        if rank:
            num_items = self.vectors.shape[0] - 1
            # A NaN target is beaten by everything; cap it at the worst possible rank.
            ranks = (1 + beaten).clamp(max=num_items)
        ce = lse - target / temperature if loss else None
        return ranks, ce


def _excluded(
    histories: Any,
    rows: np.ndarray,
    window: torch.Tensor,
    targets: torch.Tensor,
    protocol: Protocol,
) -> torch.Tensor:
    """``[B, L]`` item ids never counted against the target: item 0, the target itself (which
    only keeps it from beating itself) and the protocol's :func:`history_excluded`."""
    excluded = torch.stack([torch.zeros_like(targets), targets], dim=1)
    history = history_excluded(histories, rows, window, targets, protocol)
    return excluded if history is None else torch.cat([excluded, history], dim=1)


def history_excluded(
    histories: Any,
    rows: np.ndarray,
    window: torch.Tensor,
    targets: torch.Tensor,
    protocol: Protocol,
) -> torch.Tensor | None:
    """``[B, L]`` the items the protocol removes from the candidates (0 = none): the user's
    history, or only the input ``window [B, N]``; None when it keeps the history. The target
    stays a candidate even when consumed before: it is what is being ranked."""
    if not protocol.exclude_history:
        return None
    hist = window if protocol.window_only else padded_histories(histories, rows, targets.device)
    return torch.where(hist == targets.unsqueeze(1), torch.zeros_like(hist), hist)


def _sampled_ranks(
    query: torch.Tensor,
    vectors: torch.Tensor,
    eval_set: Any,
    rows: np.ndarray,
    num_items: int,
    protocol: Protocol,
) -> torch.Tensor:
    histories = eval_set.histories
    candidates = sampled_candidates(
        [histories.sequence(int(r)) for r in rows],
        np.asarray(eval_set.targets)[rows],
        np.asarray(eval_set.users)[rows],
        num_items,
        protocol,
    )
    cand = torch.from_numpy(candidates).to(query.device)
    scores = torch.einsum("bd,bcd->bc", query, vectors[cand])
    return ranks_from_scores(scores, 0)


def _no_autocast(device: torch.device):
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type without autocast support
        return nullcontext()
