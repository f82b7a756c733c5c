"""Dataset statistics and the check against published figures."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from recscale.data.dataset import SequenceDataset
from recscale.data.specs import DatasetSpec, Published
from recscale.errors import RecscaleError

QUANTILES = (25, 50, 75, 90, 99)


def dataset_statistics(ds: SequenceDataset) -> dict[str, Any]:
    """Counts, sequence-length summary and density of ``ds`` (plain JSON-able values).

    Keys: users, items, interactions, length_min, length_mean, length_p25 ... length_p99,
    length_max, density (= interactions / (users * items)), has_timestamps, has_ratings.
    """
    lengths = ds.lengths
    stats: dict[str, Any] = {
        "users": ds.num_users,
        "items": ds.num_items,
        "interactions": ds.num_interactions,
    }
    if len(lengths):
        stats["length_min"] = int(lengths.min())
        stats["length_mean"] = float(lengths.mean())
        for q, v in zip(QUANTILES, np.percentile(lengths, QUANTILES), strict=True):
            stats[f"length_p{q}"] = float(v)
        stats["length_max"] = int(lengths.max())
    cells = ds.num_users * ds.num_items
    stats["density"] = ds.num_interactions / cells if cells else 0.0
    stats["has_timestamps"] = ds.timestamps is not None
    stats["has_ratings"] = ds.ratings is not None
    if ds.timestamps is not None:
        stats["timestamp_tie_share"] = timestamp_tie_share(ds)
    return stats


def timestamp_tie_share(ds: SequenceDataset) -> float:
    """Share of interactions that share their timestamp with another of the same user: the
    rows whose order only the sort's tie rule decides."""
    if ds.timestamps is None or ds.num_interactions == 0:
        return 0.0
    same = ds.timestamps[1:] == ds.timestamps[:-1]
    same[ds.offsets[1:-1] - 1] = False  # a user's first row never ties with the previous user
    tied = np.zeros(ds.num_interactions, dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    return float(tied.mean())


def changed_targets(stable: SequenceDataset, other: SequenceDataset) -> dict[str, float]:
    """Share of users whose leave-one-out test target (last item) and valid target (the
    one before) differ between two orderings of the same interactions (raw ids compared)."""
    users, mine, theirs = np.intersect1d(stable.user_ids, other.user_ids, return_indices=True)
    out = {}
    for name, back in (("test", 1), ("valid", 2)):
        a, b = _target_of(stable, mine, back), _target_of(other, theirs, back)
        out[f"{name}_targets_changed"] = float(np.mean(a != b)) if len(users) else 0.0
    return out


def _target_of(ds: SequenceDataset, index: np.ndarray, back: int) -> np.ndarray:
    """Raw id of the ``back``-th last item of each user ``index`` ("" when too short)."""
    ends = ds.offsets[index + 1]
    has = ends - ds.offsets[index] >= back
    items = np.where(has, ds.items[np.maximum(ends - back, 0)], 0)
    return ds.item_ids[items]


def check_counts(ds: SequenceDataset, expected: Published, what: str) -> None:
    """Raise when a published count (users, items, interactions) differs from ``ds``."""
    got = {"users": ds.num_users, "items": ds.num_items, "interactions": ds.num_interactions}
    wrong = [
        f"{key} {got[key]:,} (published {want:,})"
        for key in ("users", "items", "interactions")
        if (want := getattr(expected, key)) is not None and got[key] != want
    ]
    if wrong and not expected.verified:
        warnings.warn(
            f"{what}: statistics differ from the (unverified) published figures: "
            f"{', '.join(wrong)}",
            stacklevel=2,
        )
    elif wrong:
        raise RecscaleError(
            f"{what}: statistics differ from the published figures: {', '.join(wrong)}; "
            "the source file or the preprocessing recipe is not the registered one"
        )


def check_published(ds: SequenceDataset, spec: DatasetSpec) -> None:
    """Raise RecscaleError when ``ds`` does not have ``spec``'s published counts."""
    check_counts(ds, spec.published, f"dataset {spec.name!r}")
