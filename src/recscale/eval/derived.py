"""Derived evaluation sets: a test set regrouped, truncated, corrupted or looked further ahead.

Pure functions of ``EvalSet`` / ``SequenceDataset`` (and a seed): the challenge tasks build
their views with them, and the tests hold each to its neutral setting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from recscale.data.dataset import SequenceDataset
from recscale.data.splits import EvalSet, Split
from recscale.errors import RecscaleError

# Per-interaction columns that travel with the items when a task rewrites histories.
Extras = dict[str, list[np.ndarray]]
_EXTRA_COLUMNS = {"timestamps": np.int64, "ratings": np.float32}


def eval_set_from(
    template: SequenceDataset,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    users: np.ndarray,
    extras: Extras | None = None,
    rows: np.ndarray | None = None,
) -> EvalSet:
    """An ``EvalSet`` with the given histories, sharing ``template``'s item vocabulary;
    ``extras`` holds per-history ``timestamps`` / ``ratings`` aligned with the items (kept
    where the template has them); ``rows`` picks the template rows they stand for (all, in
    order, when None)."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    offsets = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(histories).astype(np.int64) if len(histories) else np.zeros(0, np.int64)
    columns: dict[str, np.ndarray | None] = {}
    for name, dtype in _EXTRA_COLUMNS.items():
        given = (extras or {}).get(name)
        keep = given is not None and getattr(template, name) is not None
        columns[name] = (
            (np.concatenate(given) if len(given) else np.zeros(0)).astype(dtype) if keep else None
        )
    ds = replace(
        template,
        offsets=offsets,
        items=flat,
        user_ids=template.user_ids if rows is None else template.user_ids[rows],
        **columns,
    )
    return EvalSet(ds, np.asarray(targets, dtype=np.int64), np.asarray(users, dtype=np.int64))


def history_rows(eval_set: EvalSet) -> tuple[list[np.ndarray], Extras]:
    """Each history's items, and its per-interaction columns that exist."""
    h = eval_set.histories
    seqs = [h.sequence(i) for i in range(h.num_users)]
    extras = {
        name: [getattr(h, name)[h.offsets[i] : h.offsets[i + 1]] for i in range(h.num_users)]
        for name in _EXTRA_COLUMNS
        if getattr(h, name) is not None
    }
    return seqs, extras


def map_extras(extras: Extras, pick) -> Extras:
    """``pick(i, column)`` applied to every history's columns."""
    return {name: [pick(i, col) for i, col in enumerate(cols)] for name, cols in extras.items()}


def subset(eval_set: EvalSet, rows: np.ndarray) -> EvalSet:
    """The rows ``rows`` of an eval set (histories keep their own user index)."""
    return EvalSet(
        eval_set.histories.select_users(rows), eval_set.targets[rows], eval_set.users[rows]
    )


def item_popularity(train: SequenceDataset) -> np.ndarray:
    """``int64 [num_items + 1]`` training interactions per item (index 0 = padding)."""
    return np.bincount(train.items, minlength=train.num_items + 1).astype(np.int64)


def popularity_groups(counts: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """``int64 [num_items + 1]`` group 1..G per item: items sorted by training count, most
    popular first (ties by id), cut at the cumulative item fractions ``bounds``."""
    items = np.arange(1, len(counts))
    order = items[np.lexsort((items, -counts[1:]))]
    cuts = np.round(np.asarray(sorted(bounds), dtype=np.float64) * len(order)).astype(int)
    groups = np.zeros(len(counts), dtype=np.int64)
    groups[order] = 1 + np.searchsorted(cuts, np.arange(len(order)), side="right")
    return groups


def truncate(eval_set: EvalSet, keep: int) -> EvalSet:
    """Every history cut to its last ``keep`` items (the cold-start view)."""
    seqs, extras = history_rows(eval_set)
    return eval_set_from(
        eval_set.histories,
        [s[-keep:] for s in seqs],
        eval_set.targets,
        eval_set.users,
        map_extras(extras, lambda i, col: col[-keep:]),
    )


def corrupt(eval_set: EvalSet, rate: float, mode: str, seed: int) -> EvalSet:
    """Each history item independently replaced by a uniform random item (``replace``) or
    dropped (``delete``) with probability ``rate``; seeded per (seed, user). Deleting never
    empties a history: its last item is kept when every item would go. A replaced item
    keeps the original interaction's timestamp and rating."""
    if mode not in NOISE_MODES:
        raise RecscaleError(f"noise mode {mode!r}; allowed: {', '.join(NOISE_MODES)}")
    seqs, extras = history_rows(eval_set)
    num_items = eval_set.histories.num_items
    out, kept = [], []
    for seq, user in zip(seqs, eval_set.users, strict=True):
        rng = np.random.default_rng([seed, int(user)])
        hit = rng.random(len(seq)) < rate
        if mode == "replace":
            out.append(np.where(hit, rng.integers(1, num_items + 1, size=len(seq)), seq))
            kept.append(np.ones(len(seq), dtype=bool))
        else:
            if hit.all():
                hit[-1] = False
            out.append(seq[~hit])
            kept.append(~hit)
    return eval_set_from(
        eval_set.histories,
        out,
        eval_set.targets,
        eval_set.users,
        map_extras(extras, lambda i, col: col[kept[i]]),
    )


NOISE_MODES = ("replace", "delete")


def horizon_view(eval_set: EvalSet, horizon: int, min_input: int) -> tuple[EvalSet, np.ndarray]:
    """The last ``horizon`` items of history + target become targets.

    Returns the eval set of the inputs (target = the first of the ``horizon`` items) and
    ``int64 [U, horizon]`` all targets in order. Only users whose history keeps at least
    ``min_input`` items are included.
    """
    seqs, extras = history_rows(eval_set)
    keep = [i for i, s in enumerate(seqs) if len(s) - (horizon - 1) >= min_input]
    inputs, targets = [], []
    for i in keep:
        full = np.append(seqs[i], eval_set.targets[i])
        inputs.append(full[:-horizon])
        targets.append(full[-horizon:])
    targets_arr = np.array(targets, dtype=np.int64).reshape(len(keep), horizon)
    view = eval_set_from(
        eval_set.histories,
        inputs,
        targets_arr[:, 0] if len(keep) else np.zeros(0, np.int64),
        eval_set.users[keep],
        {
            name: [cols[i][: len(inputs[k])] for k, i in enumerate(keep)]
            for name, cols in extras.items()
        },
        rows=np.asarray(keep, dtype=np.int64),
    )
    return view, targets_arr


def unseen_tail(split: Split) -> int:
    """How many trailing items of every test user's history + target were never training
    targets (leave-one-out: 2, the valid and test items; test-only and temporal: 1)."""
    test = split.test
    full = test.histories.lengths + 1
    trained = split.train.lengths[test.users]
    return int((full - np.maximum(trained, 1)).min()) if len(test) else 0


def repeat_targets(view: EvalSet, targets: np.ndarray) -> EvalSet:
    """One row per (user, future item), all with the user's input: ranked from one query,
    the mean hit rate over the rows is recall@K of the set of future items."""
    u, k = targets.shape
    rows = np.repeat(np.arange(u), k)
    histories = view.histories.select_users(rows)
    return EvalSet(histories, targets.reshape(-1), view.users[rows])
