"""Protocol parsing and the seeded negatives of sampled protocols."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.errors import RecscaleError
from recscale.eval.protocols import Protocol, parse_protocol, sample_negatives, sampled_candidates


def test_parse_known_forms():
    assert parse_protocol("full") == Protocol("full", True, None, 0, "full")
    assert parse_protocol("full-no-exclude").exclude_history is False
    assert parse_protocol("full-window").window_only is True
    p = parse_protocol("sampled-2499", seed=7)
    assert (p.kind, p.num_negatives, p.seed, p.name) == ("sampled", 2499, 7, "sampled-2499")
    assert parse_protocol(p) is p
    assert p.to_dict()["name"] == "sampled-2499"


@pytest.mark.parametrize("bad", ["fulll", "sampled", "sampled-0", "sampled-x", "full-exclude", ""])
def test_parse_rejects_with_allowed_forms(bad):
    with pytest.raises(
        RecscaleError,
        match="allowed: full, full-filter-seen, full-filter-seen-cold, full-no-exclude, "
        "full-window, sampled-N",
    ):
        parse_protocol(bad)


@settings(max_examples=100, deadline=None)
@given(
    num_items=st.integers(2, 60),
    data=st.data(),
    n=st.integers(1, 50),
    seed=st.integers(0, 2**31),
    user=st.integers(0, 10**6),
)
def test_negatives_avoid_history_and_target(num_items, data, n, seed, user):
    history = np.array(data.draw(st.lists(st.integers(1, num_items), max_size=num_items)))
    target = data.draw(st.integers(1, num_items))
    eligible = set(range(1, num_items + 1)) - set(history.tolist()) - {target}
    if not eligible:
        with pytest.raises(RecscaleError, match="every one"):
            sample_negatives(history, target, num_items, n, seed, user)
        return
    neg = sample_negatives(history, target, num_items, n, seed, user)
    assert neg.dtype == np.int64 and neg.shape == (n,)
    assert set(neg.tolist()) <= eligible
    assert np.array_equal(neg, sample_negatives(history, target, num_items, n, seed, user))


def test_negatives_are_uniform_over_eligible_items():
    history = np.array([2, 3, 5, 9])
    neg = sample_negatives(history, 7, 10, 60_000, seed=1, user=3)
    counts = np.bincount(neg, minlength=11)[1:]
    eligible = [1, 4, 6, 8, 10]
    assert counts[[i - 1 for i in eligible]].sum() == len(neg)
    expected = len(neg) / len(eligible)
    chi2 = ((counts[[i - 1 for i in eligible]] - expected) ** 2 / expected).sum()
    assert chi2 < 20  # 4 degrees of freedom; p ~ 5e-4


def test_candidates_depend_on_user_not_batch():
    histories = [np.array([1, 2]), np.array([3]), np.array([4, 5, 6])]
    targets, users = np.array([3, 4, 7]), np.array([10, 11, 12])
    p = parse_protocol("sampled-5", seed=3)
    whole = sampled_candidates(histories, targets, users, 20, p)
    assert whole[:, 0].tolist() == [3, 4, 7]
    parts = [
        sampled_candidates(histories[i : i + 1], targets[i : i + 1], users[i : i + 1], 20, p)
        for i in range(3)
    ]
    assert np.array_equal(whole, np.concatenate(parts))
    other_seed = sampled_candidates(
        histories, targets, users, 20, parse_protocol("sampled-5", seed=4)
    )
    assert not np.array_equal(whole, other_seed)
