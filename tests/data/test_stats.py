"""Statistics and the published-figure check."""

from __future__ import annotations

import json

import pytest

from recscale.data.specs import DatasetSpec, Published
from recscale.data.stats import check_counts, check_published, dataset_statistics
from recscale.errors import RecscaleError


def test_statistics(toy):
    s = dataset_statistics(toy)
    assert (s["users"], s["items"], s["interactions"]) == (4, 8, 12)
    assert s["length_min"] == 1 and s["length_max"] == 5 and s["length_mean"] == 3.0
    assert s["length_p50"] == 3.0
    assert s["density"] == pytest.approx(12 / 32)
    assert s["has_timestamps"] and not s["has_ratings"]
    json.dumps(s)  # plain values only


def test_check_published(toy):
    spec = DatasetSpec("toy", "", "sasrec", (), Published(4, 8, 12))
    check_published(toy, spec)
    check_counts(toy, Published(users=4), "toy")  # unknown figures are not checked
    with pytest.raises(
        RecscaleError,
        match=r"dataset 'toy': .*items 8 \(published 9\), interactions 12 \(published 13\)",
    ):
        check_published(toy, DatasetSpec("toy", "", "sasrec", (), Published(4, 9, 13)))


def test_unverified_figures_only_warn(toy):
    with pytest.warns(UserWarning, match=r"unverified.*users 4 \(published 5\)"):
        check_counts(toy, Published(users=5, verified=False), "toy")


def test_tie_share_and_changed_targets_by_hand():
    from recscale.data.preprocess import Recipe, preprocess
    from recscale.data.stats import changed_targets, timestamp_tie_share
    from tests.data.test_preprocess import raw

    # User 1: times 3 3 7 (two tied rows); user 2: 5 5 (tied), 9; user 3: 1 2 (no ties).
    # User 2's last row (5) and user 3's first (1) differ, and users never tie across.
    r = raw(
        [1, 1, 1, 2, 2, 2, 3, 3],
        [10, 11, 12, 20, 21, 22, 30, 31],
        timestamp=[3, 3, 7, 5, 5, 9, 1, 2],
    )
    ds = preprocess(r, Recipe(), "t")
    assert timestamp_tie_share(ds) == pytest.approx(4 / 8)

    swapped = raw(
        [1, 1, 1, 2, 2, 2, 3, 3],
        [10, 11, 12, 21, 20, 22, 31, 30],
        timestamp=[3, 3, 7, 5, 5, 9, 1, 2],
    )
    other = preprocess(swapped, Recipe(), "t")
    # User 3's two items swap (test and valid targets move); user 2's tied pair swaps
    # (its valid target, the second last, moves; its test target 22 stays).
    assert changed_targets(ds, other) == {
        "test_targets_changed": pytest.approx(1 / 3),
        "valid_targets_changed": pytest.approx(2 / 3),
    }
