"""SequenceDataset helpers: the CSR gather index against a plain loop."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.data.dataset import ranges

from .conftest import make_dataset


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 5)), max_size=20))
def test_ranges_matches_loop(pairs):
    starts = np.array([s for s, _ in pairs], dtype=np.int64)
    lengths = np.array([n for _, n in pairs], dtype=np.int64)
    expected = [i for s, n in pairs for i in range(s, s + n)]
    assert ranges(starts, lengths).tolist() == expected


def test_select_users_with_empty_first_user():
    ds = make_dataset([[], [3, 4], [5]])
    sub = ds.select_users(np.array([0, 2, 1]))
    assert sub.items.tolist() == [5, 3, 4] and sub.lengths.tolist() == [0, 1, 2]
