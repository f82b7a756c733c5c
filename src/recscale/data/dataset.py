"""The canonical dataset: per-user chronological item sequences in CSR form.

Every reader and preprocessing recipe ends here, and every split, batch, model and
metric starts here. Items are contiguous ids ``1..num_items`` (0 is padding); the
raw ids are kept so results can be mapped back. Sequences are stored as one flat
array plus offsets (CSR), which is compact, fast to slice, and saves to npz
without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PAD = 0


@dataclass(frozen=True)
class SequenceDataset:
    """Per-user chronological sequences.

    Attributes:
        name: dataset name (registry name or file stem).
        offsets: ``int64 [U+1]``; user ``u``'s interactions are ``items[offsets[u]:offsets[u+1]]``.
        items: ``int64 [nnz]`` contiguous item ids in ``1..num_items``.
        num_items: size of the item vocabulary (excluding padding).
        user_ids: ``str [U]`` raw user ids.
        item_ids: ``str [num_items + 1]`` raw item ids; index 0 is the padding token ``""``.
        timestamps: ``int64 [nnz]`` Unix seconds, or None when the source has none.
        ratings: ``float32 [nnz]`` explicit ratings / behaviour values, or None.
        item_domains: ``int64 [num_items + 1]`` domain id per item (0 for padding), or None.
        domain_names: names of the domains, indexed by domain id - 1.
        recipe: the preprocessing options that produced this dataset (recorded with results).
    """

    name: str
    offsets: np.ndarray
    items: np.ndarray
    num_items: int
    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: np.ndarray | None = None
    ratings: np.ndarray | None = None
    item_domains: np.ndarray | None = None
    domain_names: tuple[str, ...] = ()
    recipe: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.items)
        if self.offsets.ndim != 1 or self.offsets[0] != 0 or self.offsets[-1] != n:
            raise ValueError("offsets must start at 0 and end at len(items)")
        if len(self.user_ids) != len(self.offsets) - 1:
            raise ValueError("user_ids must have one entry per user")
        if len(self.item_ids) != self.num_items + 1:
            raise ValueError("item_ids must have num_items + 1 entries (index 0 = padding)")
        for name in ("timestamps", "ratings"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"{name} must align with items")

    @property
    def num_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_interactions(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        """``int64 [U]`` sequence length per user."""
        return np.diff(self.offsets)

    def sequence(self, user: int) -> np.ndarray:
        """Item ids of one user (internal index), oldest first."""
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def user_timestamps(self, user: int) -> np.ndarray | None:
        if self.timestamps is None:
            return None
        return self.timestamps[self.offsets[user] : self.offsets[user + 1]]

    def select_users(self, users: np.ndarray) -> SequenceDataset:
        """A dataset with only ``users`` (internal indices, in the given order); items keep ids."""
        users = np.asarray(users, dtype=np.int64)
        starts, ends = self.offsets[users], self.offsets[users + 1]
        lengths = ends - starts
        offsets = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        index = _ranges(starts, lengths)
        return SequenceDataset(
            name=self.name,
            offsets=offsets,
            items=self.items[index],
            num_items=self.num_items,
            user_ids=self.user_ids[users],
            item_ids=self.item_ids,
            timestamps=None if self.timestamps is None else self.timestamps[index],
            ratings=None if self.ratings is None else self.ratings[index],
            item_domains=self.item_domains,
            domain_names=self.domain_names,
            recipe=self.recipe,
        )


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + l)`` for each pair, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    index = np.ones(total, dtype=np.int64)
    nonempty = lengths > 0
    s, e, l = starts[nonempty], ends[nonempty], lengths[nonempty]
    # The first non-empty segment starts the run (an empty first segment has no index).
    index[0] = s[0]
    # At each segment boundary jump from the previous segment's last index to the next start.
    index[e[:-1]] = s[1:] - (s[:-1] + l[:-1] - 1)
    return np.cumsum(index)


def ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Public alias of the CSR gather index used by splits and batching."""
    return _ranges(np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64))
