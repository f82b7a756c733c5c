"""Ranking metrics against brute-force definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.eval.ranking_metrics import auc, gauc, logloss


def brute_auc(labels, scores) -> float:
    pos = [s for y, s in zip(labels, scores, strict=True) if y]
    neg = [s for y, s in zip(labels, scores, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40))
def test_auc_is_the_pairwise_win_rate_with_ties_halved(pairs):
    labels = np.array([y for y, _ in pairs])
    scores = np.array([s for _, s in pairs], dtype=float)  # few values: many ties
    if labels.all() or not labels.any():
        assert math.isnan(auc(labels, scores))
    else:
        assert auc(labels, scores) == pytest.approx(brute_auc(labels, scores))


def test_gauc_by_hand():
    users = np.array([7, 7, 7, 3, 3, 5, 5])
    labels = np.array([1, 0, 0, 1, 0, 1, 1])  # user 5 has no negative: left out
    scores = np.array([0.9, 0.5, 0.95, 0.2, 0.1, 0.3, 0.4])
    # user 7: AUC 1/2 over 3 examples; user 3: AUC 1 over 2 examples.
    assert gauc(users, labels, scores) == pytest.approx((0.5 * 3 + 1.0 * 2) / 5)


def test_logloss_is_binary_cross_entropy():
    y, p = np.array([1, 0, 1]), np.array([0.8, 0.3, 0.5])
    want = -(math.log(0.8) + math.log(0.7) + math.log(0.5)) / 3
    assert logloss(y, p) == pytest.approx(want)
    assert np.isfinite(logloss(np.array([1]), np.array([0.0])))  # clipped, not infinite
