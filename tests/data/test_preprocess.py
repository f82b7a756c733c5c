"""Preprocessing: each recipe step against a hand-worked example."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from recscale.data.preprocess import Recipe, preprocess
from recscale.data.readers import Interactions
from recscale.errors import RecscaleError


def raw(user, item, timestamp=None, rating=None) -> Interactions:
    cols = {"user": user, "item": item}
    if timestamp is not None:
        cols["timestamp"] = timestamp
    if rating is not None:
        cols["rating"] = rating
    frame = pl.DataFrame(cols)
    if rating is not None:
        frame = frame.with_columns(pl.col("rating").cast(pl.Float32))
    return Interactions(frame, "mem")


def seqs(ds) -> dict[str, list[str]]:
    return {ds.user_ids[u]: [ds.item_ids[i] for i in ds.sequence(u)] for u in range(ds.num_users)}


def test_stable_chronological_sort_ties_keep_file_order():
    r = raw([2, 1, 1, 1, 2], [9, 30, 10, 20, 8], timestamp=[5, 7, 3, 3, 5])
    ds = preprocess(r, Recipe(), "t")
    assert seqs(ds) == {"1": ["10", "20", "30"], "2": ["9", "8"]}
    assert ds.timestamps.tolist() == [3, 3, 7, 5, 5]


def test_legacy_sort_is_numpy_quicksort_over_the_file_then_grouped_by_user():
    rng = np.random.default_rng(0)
    n = 3000  # long enough that numpy's quicksort leaves ties out of file order
    users = rng.integers(1, 30, n)
    items = np.arange(1, n + 1)  # item = file row + 1, so an order is a list of rows
    times = rng.integers(0, 40, n)
    r = raw(users.tolist(), items.tolist(), timestamp=times.tolist())
    legacy = preprocess(r, Recipe(sort="legacy_unstable"), "t")
    order = np.argsort(times, kind="quicksort")
    expected: dict[str, list[str]] = {}
    for row in order:  # what pandas' sort_values(...).groupby("user") yields
        expected.setdefault(str(users[row]), []).append(str(items[row]))
    assert seqs(legacy) == expected
    stable = preprocess(r, Recipe(), "t")
    assert seqs(stable) != seqs(legacy)  # ties reordered
    for user, sequence in seqs(stable).items():
        assert sorted(sequence) == sorted(seqs(legacy)[user])  # same rows per user
    for u in range(legacy.num_users):  # still chronological within each user
        assert np.all(np.diff(legacy.timestamps[legacy.offsets[u] : legacy.offsets[u + 1]]) >= 0)


def test_no_timestamps_keep_file_order_and_remap_sorted():
    ds = preprocess(raw([1, 1, 1], [30, 5, 100]), Recipe(), "t")
    assert ds.items.tolist() == [2, 1, 3]  # 5 -> 1, 30 -> 2, 100 -> 3
    assert ds.item_ids.tolist() == ["", "5", "30", "100"]
    assert ds.timestamps is None


def test_string_ids():
    ds = preprocess(raw(["b", "a"], ["y", "x"]), Recipe(), "t")
    assert ds.user_ids.tolist() == ["a", "b"] and seqs(ds) == {"a": ["x"], "b": ["y"]}


def test_rating_threshold():
    ds = preprocess(
        raw([1, 1, 1], [1, 2, 3], [1, 2, 3], [5, 3, 4]), Recipe(rating_threshold=4), "t"
    )
    assert seqs(ds) == {"1": ["1", "3"]}
    assert ds.ratings.tolist() == [5.0, 4.0]
    with pytest.raises(RecscaleError, match=r"rating_threshold=4\.0 but the data has no ratings"):
        preprocess(raw([1], [1]), Recipe(rating_threshold=4), "t")


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("keep", ["1", "1", "2", "1", "1"]),
        ("drop_consecutive", ["1", "2", "1"]),
        ("keep_first", ["1", "2"]),
    ],
)
def test_duplicates(policy, expected):
    ds = preprocess(raw([1] * 5, [1, 1, 2, 1, 1]), Recipe(duplicates=policy), "t")
    assert seqs(ds)["1"] == expected


def test_single_pass_vs_iterated_kcore():
    # Item 3 has 2 users; dropping user 2 (1 interaction after items filter) makes item 3 rare.
    user = [1, 1, 1, 2, 2, 3, 3, 3]
    item = [1, 2, 3, 3, 4, 1, 2, 1]
    once = preprocess(raw(user, item), Recipe(min_user_count=2, min_item_count=2), "t")
    assert seqs(once) == {"1": ["1", "2", "3"], "2": ["3"], "3": ["1", "2", "1"]}
    core = preprocess(
        raw(user, item), Recipe(min_user_count=2, min_item_count=2, kcore_mode="iterate"), "t"
    )
    assert seqs(core) == {"1": ["1", "2"], "3": ["1", "2", "1"]}
    counts = np.bincount(core.items)
    assert counts[1:].min() >= 2 and core.lengths.min() >= 2


def test_min_seq_len_and_max_len_keep_recent():
    r = raw([1, 1, 1, 1, 2], [1, 2, 3, 4, 5], [1, 2, 3, 4, 1])
    ds = preprocess(r, Recipe(min_seq_len=2, max_len=3), "t")
    assert seqs(ds) == {"1": ["2", "3", "4"]}
    assert ds.num_items == 3 and ds.timestamps.tolist() == [2, 3, 4]
    assert ds.recipe["max_len"] == 3 and ds.recipe["min_seq_len"] == 2


def test_recipe_errors():
    with pytest.raises(
        RecscaleError, match=r"kcore_mode: Input should be 'single_pass' or 'iterate'"
    ):
        Recipe.build({}, {"kcore_mode": "twice"})
    with pytest.raises(
        RecscaleError, match=r"min_count: Extra inputs .*allowed keys: rating_threshold"
    ):
        Recipe.build({}, {"min_count": 3})
    with pytest.raises(RecscaleError, match="no interactions left"):
        preprocess(raw([1], [1]), Recipe(min_seq_len=2), "t")
