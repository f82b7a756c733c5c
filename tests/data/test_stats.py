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
