"""Train / valid / test splits as data (see docs/CONTRACTS.md).

Every split keeps the user indices of the source dataset: ``split.train`` has one
(possibly shortened or empty) sequence per source user, and ``EvalSet.users`` are
source user indices. Nothing an EvalSet asks for is ever inside the training
sequence of the same user.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np

from recscale.data.dataset import SequenceDataset, ranges
from recscale.errors import RecscaleError


@dataclass(frozen=True)
class EvalSet:
    """One held-out target per evaluated user.

    Attributes:
        histories: ``SequenceDataset`` with U sequences, everything the model may see.
        targets: ``int64 [U]`` held-out item per row.
        users: ``int64 [U]`` source user index per row.
    """

    histories: SequenceDataset
    targets: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class Split:
    train: SequenceDataset
    valid: EvalSet | None
    test: EvalSet
    name: str


def _slice(
    ds: SequenceDataset, users: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> SequenceDataset:
    """Sequences ``items[starts[k] : starts[k] + lengths[k]]`` for ``users[k]``, as a dataset."""
    offsets = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    index = ranges(starts, lengths)
    return replace(
        ds,
        offsets=offsets,
        items=ds.items[index],
        user_ids=ds.user_ids[users],
        timestamps=None if ds.timestamps is None else ds.timestamps[index],
        ratings=None if ds.ratings is None else ds.ratings[index],
    )


def _prefix_train(ds: SequenceDataset, drop: np.ndarray) -> SequenceDataset:
    """Every user's sequence without its last ``drop[u]`` items."""
    users = np.arange(ds.num_users)
    return _slice(ds, users, ds.offsets[:-1], ds.lengths - drop)


def _eval(ds: SequenceDataset, users: np.ndarray, history_len: np.ndarray) -> EvalSet:
    """Histories ``s[:history_len]`` and targets ``s[history_len]`` for ``users``."""
    starts = ds.offsets[users]
    return EvalSet(
        histories=_slice(ds, users, starts, history_len),
        targets=ds.items[starts + history_len].astype(np.int64),
        users=users.astype(np.int64),
    )


def leave_one_out(ds: SequenceDataset) -> Split:
    """train = s[:-2], valid = (s[:-2] -> s[-2]), test = (s[:-1] -> s[-1]).

    Users with fewer than 3 interactions are not evaluated and train on their whole
    sequence (as SASRec does).
    """
    lengths = ds.lengths
    evaluated = np.flatnonzero(lengths >= 3)
    drop = np.where(lengths >= 3, 2, 0)
    ev_len = lengths[evaluated]
    return Split(
        train=_prefix_train(ds, drop),
        valid=_eval(ds, evaluated, ev_len - 2),
        test=_eval(ds, evaluated, ev_len - 1),
        name="leave_one_out",
    )


def leave_one_out_test_only(ds: SequenceDataset) -> Split:
    """HSTU code: train = s[:-1], no valid, test = (s[:-1] -> s[-1]).

    Users with fewer than 2 interactions are not evaluated and train on their whole sequence.
    """
    lengths = ds.lengths
    evaluated = np.flatnonzero(lengths >= 2)
    drop = np.where(lengths >= 2, 1, 0)
    return Split(
        train=_prefix_train(ds, drop),
        valid=None,
        test=_eval(ds, evaluated, lengths[evaluated] - 1),
        name="leave_one_out_test_only",
    )


def cold_items(ds: SequenceDataset, fraction: float = 0.1, seed: int = 0) -> Split:
    """Leave-one-out where a random ``fraction`` of the items is never seen in training.

    Every interaction with a cold item is dropped except a user's last one (kept only where
    the user still has 3 items to be evaluated on), then :func:`leave_one_out` runs on what
    remains: a cold item is never a training target nor in
    any training or validation sequence, and it is the test target of every user whose last
    interaction it is. The cold set depends on ``seed`` only, so every run of a comparison
    holds out the same items; the ``cold_items`` task scores the cold and warm targets apart.
    """
    rng = np.random.default_rng(seed)
    count = max(1, round(fraction * ds.num_items))
    cold = np.zeros(ds.num_items + 1, dtype=bool)
    cold[1 + rng.choice(ds.num_items, count, replace=False)] = True
    last = np.zeros(len(ds.items), dtype=bool)
    last[ds.offsets[1:][ds.lengths > 0] - 1] = True
    warm = ~cold[ds.items]
    keep = warm | last
    user_of = np.repeat(np.arange(ds.num_users), ds.lengths)
    # A user left with fewer than 3 items is not evaluated and trains on all of them: so
    # without a cold last item.
    short = np.bincount(user_of[keep], minlength=ds.num_users) < 3
    keep &= warm | ~short[user_of]
    offsets = np.zeros(ds.num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_of[keep], minlength=ds.num_users), out=offsets[1:])
    kept = replace(
        ds,
        offsets=offsets,
        items=ds.items[keep],
        timestamps=None if ds.timestamps is None else ds.timestamps[keep],
        ratings=None if ds.ratings is None else ds.ratings[keep],
    )
    return replace(leave_one_out(kept), name="cold_items")


def temporal_split(ds: SequenceDataset, quantile: float = 0.9) -> Split:
    """Global time cut at the ``quantile`` of all timestamps.

    Interactions strictly before the cut form the training set. For each user with
    at least one interaction before the cut and one at or after it, the first
    interaction at or after the cut is the test target, with all of that user's
    earlier interactions as history. Later interactions are not used. Users with no
    interaction before the cut are not evaluated (nothing to condition on). No valid set.
    """
    if ds.timestamps is None:
        raise RecscaleError(f"dataset {ds.name!r} has no timestamps; temporal_split needs them")
    if not 0.0 < quantile < 1.0:
        raise RecscaleError(f"temporal_split quantile must be in (0, 1), got {quantile}")
    cut = np.quantile(ds.timestamps, quantile, method="lower")
    before = ds.timestamps < cut
    # Sequences are chronological, so the count before the cut is the index of the first one after.
    cum = np.concatenate([[0], np.cumsum(before, dtype=np.int64)])
    n_before = cum[ds.offsets[1:]] - cum[ds.offsets[:-1]]
    evaluated = np.flatnonzero((n_before > 0) & (n_before < ds.lengths))
    return Split(
        train=_prefix_train(ds, ds.lengths - n_before),
        valid=None,
        test=_eval(ds, evaluated, n_before[evaluated]),
        name=f"temporal_{quantile:g}",
    )


SubsampleBy = Literal["users", "interactions"]


def subsample_train(
    split: Split,
    fraction: float,
    by: SubsampleBy = "users",
    seed: int = 0,
) -> Split:
    """Shrink only ``split.train`` to ``fraction`` of it, deterministically per ``seed``.

    ``by="users"``: keep round(fraction * U') of the U' users with training data; the
    others get empty training sequences (user indices stay aligned).
    ``by="interactions"``: walk the users in a seeded random order and keep whole
    sequences until round(fraction * total) interactions are kept; the last user keeps
    only its most recent items to hit the count exactly.
    """
    if not 0.0 < fraction <= 1.0:
        raise RecscaleError(f"subsample fraction must be in (0, 1], got {fraction}")
    if by not in get_args(SubsampleBy):
        allowed = " or ".join(repr(b) for b in get_args(SubsampleBy))
        raise RecscaleError(f"subsample by must be {allowed}, got {by!r}")
    train = split.train
    lengths = train.lengths
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.flatnonzero(lengths > 0))
    keep = np.zeros(train.num_users, dtype=np.int64)
    if by == "users":
        chosen = order[: round(fraction * len(order))]
        keep[chosen] = lengths[chosen]
    else:
        budget = round(fraction * int(lengths.sum()))
        cum = np.cumsum(lengths[order])
        full = int(np.searchsorted(cum, budget, side="right"))
        keep[order[:full]] = lengths[order[:full]]
        if full < len(order):
            keep[order[full]] = budget - (int(cum[full - 1]) if full else 0)
    users = np.arange(train.num_users)
    starts = train.offsets[1:] - keep  # most recent items of each kept sequence
    name = f"{split.name}+{by}{fraction:g}@{seed}"
    return replace(split, train=_slice(train, users, starts, keep), name=name)
