"""Several datasets in one id space, each item tagged with its domain (cross-domain studies).

Item ids are offset per domain and raw ids prefixed with the domain name, so two sources
that both call an item ``"1"`` stay two items. Users are kept apart the same way unless
the sources share a user id space (``shared_users``, e.g. Amazon reviewer ids): then a
user's interactions from every domain form one sequence, merged by timestamp (stable, so
ties keep the domain order), which needs timestamps in every source.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recscale.data.dataset import SequenceDataset
from recscale.errors import RecscaleError


def merge_domains(
    datasets: Sequence[SequenceDataset], *, shared_users: bool = False, name: str | None = None
) -> SequenceDataset:
    """One dataset with ``item_domains`` (1-based, in the order given) and ``domain_names``."""
    if len(datasets) < 2:
        raise RecscaleError("merging domains needs at least two datasets")
    names = tuple(ds.name for ds in datasets)
    if len(set(names)) != len(names):
        raise RecscaleError(f"cannot merge a dataset with itself: {', '.join(names)}")
    has_time = all(ds.timestamps is not None for ds in datasets)
    if shared_users and not has_time:
        missing = [ds.name for ds in datasets if ds.timestamps is None]
        raise RecscaleError(
            f"shared_users merges sequences by time, but {', '.join(missing)} has no timestamps"
        )
    offset, item_ids, domains = 0, [np.array([""])], [np.zeros(1, dtype=np.int64)]
    users, items, times, ratings = [], [], [], []
    for d, ds in enumerate(datasets, start=1):
        item_ids.append(np.char.add(f"{ds.name}:", ds.item_ids[1:].astype(str)))
        domains.append(np.full(ds.num_items, d, dtype=np.int64))
        raw = ds.user_ids.astype(str)
        users.append(
            np.repeat(raw if shared_users else np.char.add(f"{ds.name}:", raw), ds.lengths)
        )
        items.append(ds.items + offset)
        times.append(ds.timestamps if has_time else np.zeros(len(ds.items), dtype=np.int64))
        ratings.append(
            ds.ratings if ds.ratings is not None else np.full(len(ds.items), np.nan, np.float32)
        )
        offset += ds.num_items
    user = np.concatenate(users)
    item = np.concatenate(items)
    time = np.concatenate(times)
    rating = np.concatenate(ratings)
    position = np.arange(len(item))
    # First-appearance user order; within a user, time then source order (stable).
    uniq, first, inverse = np.unique(user, return_index=True, return_inverse=True)
    rank_of_user = np.argsort(np.argsort(first))
    key = rank_of_user[inverse]
    order = np.lexsort((position, time, key)) if shared_users else np.lexsort((position, key))
    counts = np.bincount(key, minlength=len(uniq))
    offsets = np.zeros(len(uniq) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    keep_ratings = any(ds.ratings is not None for ds in datasets)
    return SequenceDataset(
        name=name or "+".join(names),
        offsets=offsets,
        items=item[order],
        num_items=offset,
        user_ids=uniq[np.argsort(first)],
        item_ids=np.concatenate(item_ids),
        timestamps=time[order] if has_time else None,
        ratings=rating[order] if keep_ratings else None,
        item_domains=np.concatenate(domains),
        domain_names=names,
        recipe={
            "merged": [dict(ds.recipe, name=ds.name) for ds in datasets],
            "shared_users": shared_users,
        },
    )
