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
    return stats


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
