"""Merging datasets into one id space with item domains."""

from __future__ import annotations

import numpy as np
import pytest

from recscale.data.dataset import SequenceDataset
from recscale.data.merge import merge_domains
from recscale.errors import RecscaleError


def dataset(name: str, seqs: dict[str, list[int]], times: dict[str, list[int]] | None = None):
    users = list(seqs)
    lengths = [len(seqs[u]) for u in users]
    num_items = max(max(s) for s in seqs.values())
    return SequenceDataset(
        name=name,
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        items=np.array([i for u in users for i in seqs[u]], dtype=np.int64),
        num_items=num_items,
        user_ids=np.array(users),
        item_ids=np.array([""] + [str(i) for i in range(1, num_items + 1)]),
        timestamps=None
        if times is None
        else np.array([t for u in users for t in times[u]], dtype=np.int64),
    )


def test_items_are_offset_and_tagged_and_users_kept_apart():
    a = dataset("beauty", {"1": [1, 2], "2": [2, 3]})
    b = dataset("toys", {"1": [2, 1]})
    m = merge_domains([a, b])
    assert m.num_items == 5 and m.domain_names == ("beauty", "toys")
    assert m.item_domains.tolist() == [0, 1, 1, 1, 2, 2]
    assert m.item_ids.tolist() == ["", "beauty:1", "beauty:2", "beauty:3", "toys:1", "toys:2"]
    assert m.user_ids.tolist() == ["beauty:1", "beauty:2", "toys:1"]
    assert [m.sequence(u).tolist() for u in range(3)] == [[1, 2], [2, 3], [5, 4]]
    assert m.timestamps is None


def test_shared_users_merge_by_time_stably():
    a = dataset("a", {"u": [1, 2], "v": [1]}, {"u": [10, 30], "v": [5]})
    b = dataset("b", {"u": [1, 2], "w": [2]}, {"u": [20, 30], "w": [1]})
    m = merge_domains([a, b], shared_users=True)
    assert m.user_ids.tolist() == ["u", "v", "w"]
    assert m.sequence(0).tolist() == [1, 3, 2, 4]  # 10, 20, 30 (a first on the tie), 30
    assert m.user_timestamps(0).tolist() == [10, 20, 30, 30]
    assert [raw for raw in m.item_ids[m.sequence(0)]] == ["a:1", "b:1", "a:2", "b:2"]


def test_merging_refuses_what_it_cannot_do():
    a = dataset("a", {"u": [1]})
    with pytest.raises(RecscaleError, match="at least two"):
        merge_domains([a])
    with pytest.raises(RecscaleError, match="with itself"):
        merge_domains([a, a])
    with pytest.raises(RecscaleError, match="a, b has no timestamps"):
        merge_domains([a, dataset("b", {"u": [1]})], shared_users=True)


def test_registered_datasets_merge_through_the_data_config(mirror):
    from recscale.train.config import DataConfig
    from recscale.train.data import load_source

    merged = load_source(DataConfig(name="amazon-beauty+amazon-toys"))
    assert merged.domain_names == ("amazon-beauty", "amazon-toys")
    assert merged.num_users == 22_363 + 19_412
    assert merged.num_items == 12_101 + 11_924
    assert merged.num_interactions == 198_502 + 167_597
    per_user_domains = {
        len(set(merged.item_domains[merged.sequence(u)])) for u in range(merged.num_users)
    }
    assert per_user_domains == {1}  # S3-Rec renumbers users per dataset: nobody is shared


def test_users_of_one_domain_keep_the_merged_item_ids():
    from recscale.train.data import users_in_domains

    a = dataset("a", {"u": [1, 2], "w": [2]}, {"u": [1, 5], "w": [3]})
    b = dataset("b", {"u": [1], "v": [2, 1]}, {"u": [3], "v": [1, 2]})
    merged = merge_domains([a, b], shared_users=True)
    only_b = users_in_domains(merged, ["b"])
    assert list(only_b.user_ids) == ["v"]  # "u" also has items of "a"
    assert only_b.num_items == merged.num_items
    assert only_b.sequence(0).tolist() == [4, 3]  # b's items 2, 1 after a's two items
    assert sorted(users_in_domains(merged, ["a", "b"]).user_ids) == ["u", "v", "w"]
    with pytest.raises(RecscaleError, match="allowed"):
        users_in_domains(merged, ["c"])
    with pytest.raises(RecscaleError, match="a\\+b"):
        users_in_domains(a, ["a"])
