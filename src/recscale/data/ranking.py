"""Ranking examples from interaction logs: (history, candidate, label), without leakage.

The ranking task ("Scaling New Frontiers" RQ4; the HSTU paper's ranking model) asks whether
a user engages with one candidate item given their history. Examples come from a retrieval
:class:`~recscale.data.splits.Split`:

- **train**: every target position of a training sequence is a positive (history = the items
  before it, candidate = the item), and ``negative_ratio`` negatives per positive pair a
  sampled item with a positive's history (0.5: half the positives get one);
- **valid / test**: the held-out position of each evaluated user only, with its negatives.

Negatives are items the user never interacted with anywhere in the dataset (held-out items
included), so no sampled negative is in fact a future positive. With ``like_threshold``
(data with ratings), every interaction is an example labelled ``rating >= threshold``
("like"), and sampled negatives are added only when ``negative_ratio > 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recscale.data.dataset import SequenceDataset, ranges
from recscale.data.splits import EvalSet, Split
from recscale.errors import RecscaleError


@dataclass(frozen=True)
class RankingExamples:
    """Example e: the first ``ends[e]`` items of ``source.sequence(rows[e])`` as history,
    ``candidates[e]`` as the candidate, ``labels[e]`` in {0, 1}; ``users[e]`` is the source
    user (dataset index), for per-user metrics (GAUC)."""

    source: SequenceDataset
    rows: np.ndarray
    ends: np.ndarray
    candidates: np.ndarray
    labels: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    def history(self, e: int) -> np.ndarray:
        return self.source.sequence(int(self.rows[e]))[: int(self.ends[e])]


class _Seen:
    """Membership of (user, item) in a dataset, vectorised over arrays."""

    def __init__(self, dataset: SequenceDataset) -> None:
        self.width = dataset.num_items + 1
        user_of = np.repeat(np.arange(dataset.num_users, dtype=np.int64), dataset.lengths)
        self.keys = np.unique(user_of * self.width + dataset.items)

    def __call__(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        keys = users * self.width + items
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return self.keys[at] == keys


def sample_unseen(
    dataset: SequenceDataset, users: np.ndarray, rng: np.random.Generator, seen: _Seen
) -> np.ndarray:
    """One uniformly drawn item per entry of ``users`` that the user never interacted with."""
    items = rng.integers(1, dataset.num_items + 1, size=len(users))
    for _ in range(1000):
        clash = np.flatnonzero(seen(users, items))
        if len(clash) == 0:
            return items
        items[clash] = rng.integers(1, dataset.num_items + 1, size=len(clash))
    raise RecscaleError("cannot sample negatives: some user has interacted with nearly every item")


def _negatives_per(positives: int, ratio: float, rng: np.random.Generator) -> np.ndarray:
    if ratio <= 0:
        return np.zeros(positives, dtype=np.int64)
    whole = int(np.floor(ratio))
    return whole + (rng.random(positives) < ratio - whole).astype(np.int64)


def _with_negatives(
    dataset: SequenceDataset,
    source: SequenceDataset,
    rows: np.ndarray,
    ends: np.ndarray,
    candidates: np.ndarray,
    labels: np.ndarray,
    users: np.ndarray,
    ratio: float,
    rng: np.random.Generator,
) -> RankingExamples:
    counts = _negatives_per(len(rows), ratio, rng)
    pick = np.repeat(np.arange(len(rows)), counts)
    negatives = sample_unseen(dataset, users[pick], rng, _Seen(dataset))
    return RankingExamples(
        source,
        np.concatenate([rows, rows[pick]]),
        np.concatenate([ends, ends[pick]]),
        np.concatenate([candidates, negatives]),
        np.concatenate([labels, np.zeros(len(pick), dtype=np.float32)]),
        np.concatenate([users, users[pick]]),
    )


def _source_users(dataset: SequenceDataset, part: SequenceDataset) -> np.ndarray:
    index = {u: i for i, u in enumerate(dataset.user_ids)}
    return np.array([index[u] for u in part.user_ids], dtype=np.int64)


def train_examples(
    dataset: SequenceDataset,
    split: Split,
    negative_ratio: float,
    seed: int,
    like_threshold: float | None = None,
) -> RankingExamples:
    """Examples from every target position of the training sequences (see the module)."""
    train = split.train
    targets_per_row = np.maximum(train.lengths - 1, 0)
    rows = np.repeat(np.arange(train.num_users), targets_per_row)
    ends = ranges(np.ones(train.num_users), targets_per_row)  # 1 .. n - 1 per row
    candidates = train.items[train.offsets[rows] + ends]
    if like_threshold is None:
        labels = np.ones(len(rows), dtype=np.float32)
    else:
        if train.ratings is None:
            raise RecscaleError("like_threshold needs a dataset with ratings (e.g. ml-1m)")
        labels = (train.ratings[train.offsets[rows] + ends] >= like_threshold).astype(np.float32)
    users = _source_users(dataset, train)[rows]
    rng = np.random.default_rng([seed, 0])
    return _with_negatives(
        dataset, train, rows, ends, candidates, labels, users, negative_ratio, rng
    )


def eval_examples(
    dataset: SequenceDataset,
    eval_set: EvalSet,
    negative_ratio: float,
    seed: int,
    like_threshold: float | None = None,
    salt: int = 1,
) -> RankingExamples:
    """Examples from the held-out position of each evaluated user only."""
    h = eval_set.histories
    rows = np.arange(len(eval_set), dtype=np.int64)
    labels = np.ones(len(rows), dtype=np.float32)
    if like_threshold is not None:
        ratings = dataset.ratings
        if ratings is None:
            raise RecscaleError("like_threshold needs a dataset with ratings (e.g. ml-1m)")
        # The held-out item is the one after the history in the source user's sequence.
        position = dataset.offsets[eval_set.users] + h.lengths
        labels = (ratings[position] >= like_threshold).astype(np.float32)
    rng = np.random.default_rng([seed, salt])
    return _with_negatives(
        dataset,
        h,
        rows,
        h.lengths.astype(np.int64),
        eval_set.targets.astype(np.int64),
        labels,
        eval_set.users.astype(np.int64),
        negative_ratio,
        rng,
    )


# ---- batches: one row per user, every example of the row scored in one pass ----------------
@dataclass(frozen=True)
class RankingBatch:
    """A ranker's batch (numpy; ``models.ranker.RankingInputs`` is its torch twin).

    items, labels: [B, N] history window and its labels (right-padded); lengths: [B];
    scored: [B, N] which history positions are examples (item t given the items before it);
    candidates, prefix, candidate_labels: [B, M] extra examples, each seeing the first
    ``prefix`` history items (candidate 0 = padding); users: [B] source user index.
    """

    items: np.ndarray
    lengths: np.ndarray
    labels: np.ndarray
    scored: np.ndarray
    candidates: np.ndarray
    prefix: np.ndarray
    candidate_labels: np.ndarray
    users: np.ndarray


def _pad(rows: list[np.ndarray], dtype, width: int | None = None) -> np.ndarray:
    width = max([len(r) for r in rows] + [1]) if width is None else width
    out = np.zeros((len(rows), width), dtype=dtype)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def _row_labels(source: SequenceDataset, row: int, like_threshold: float | None) -> np.ndarray:
    lo, hi = source.offsets[row], source.offsets[row + 1]
    if like_threshold is None:
        return np.ones(hi - lo, dtype=np.float32)
    if source.ratings is None:
        raise RecscaleError("like_threshold needs a dataset with ratings (e.g. ml-1m)")
    return (source.ratings[lo:hi] >= like_threshold).astype(np.float32)


def train_batches(
    dataset: SequenceDataset,
    split: Split,
    window: int,
    negative_ratio: float,
    batch_size: int,
    rng: np.random.Generator,
    like_threshold: float | None = None,
):
    """Yield shuffled training :class:`RankingBatch` es over the last ``window`` items of each
    training sequence: every position after the first is an example (positive, or under
    ``like_threshold`` its like label), and each position draws ``negative_ratio`` negatives
    on average (never-seen items, fresh from ``rng`` on every call) at the same prefix."""
    train = split.train
    seen = _Seen(dataset)
    users = _source_users(dataset, train)
    order = rng.permutation(np.flatnonzero(train.lengths >= 2))
    for lo in range(0, len(order), batch_size):
        rows = order[lo : lo + batch_size]
        histories, labels, cands, prefixes = [], [], [], []
        for row in rows:
            seq, lab = (
                train.sequence(int(row))[-window:],
                _row_labels(train, int(row), like_threshold),
            )
            lab = lab[-window:]
            counts = _negatives_per(len(seq) - 1, negative_ratio, rng)
            prefix = np.repeat(np.arange(1, len(seq)), counts)
            histories.append(seq)
            labels.append(lab)
            prefixes.append(prefix)
            cands.append(sample_unseen(dataset, np.full(len(prefix), users[row]), rng, seen))
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        width = int(lengths.max())
        scored = np.arange(width)[None, :] < lengths[:, None]
        scored[:, 0] = False
        m = max([len(c) for c in cands] + [1])
        yield RankingBatch(
            _pad(histories, np.int64, width),
            lengths,
            _pad(labels, np.float32, width),
            scored,
            _pad(cands, np.int64, m),
            _pad(prefixes, np.int64, m),
            np.zeros((len(rows), m), dtype=np.float32),
            users[rows],
        )


def eval_batches(examples: RankingExamples, window: int, batch_size: int, like_threshold=None):
    """Yield the :class:`RankingBatch` es of ``eval_examples``: one row per evaluated user,
    its last ``window`` history items, and every candidate of the user (its held-out item
    and negatives) after the whole window."""
    order = np.argsort(examples.rows, kind="stable")
    rows = examples.rows[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    groups = np.split(order, starts[1:])
    for lo in range(0, len(groups), batch_size):
        part = groups[lo : lo + batch_size]
        histories = [examples.history(int(g[0]))[-window:] for g in part]
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        width = max(int(lengths.max()), 1)
        labels = [
            _row_labels(examples.source, int(examples.rows[g[0]]), like_threshold)[
                : int(examples.ends[g[0]])
            ][-window:]
            for g in part
        ]
        m = max(len(g) for g in part)
        yield RankingBatch(
            _pad(histories, np.int64, width),
            lengths,
            _pad(labels, np.float32, width),
            np.zeros((len(part), width), dtype=bool),
            _pad([examples.candidates[g] for g in part], np.int64, m),
            _pad(
                [np.full(len(g), len(h)) for g, h in zip(part, histories, strict=True)], np.int64, m
            ),
            _pad([examples.labels[g] for g in part], np.float32, m),
            np.array([examples.users[g[0]] for g in part], dtype=np.int64),
        )
