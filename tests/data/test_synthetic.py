"""Synthetic Markov mixtures: determinism, shape, and the analytic entropy rate."""

from __future__ import annotations

import time

import numpy as np
import pytest

from recscale.data.synthetic import markov_mixture


def test_deterministic_and_valid():
    a, ia = markov_mixture(300, 50, 12, num_chains=3, concentration=0.3, seed=7)
    b, _ = markov_mixture(300, 50, 12, num_chains=3, concentration=0.3, seed=7)
    c, _ = markov_mixture(300, 50, 12, num_chains=3, concentration=0.3, seed=8)
    assert np.array_equal(a.items, b.items) and np.array_equal(a.timestamps, b.timestamps)
    assert not np.array_equal(a.items, c.items)
    assert a.items.min() >= 1 and a.items.max() <= 50 and a.num_items == 50
    assert a.lengths.min() >= 2 and abs(a.lengths.mean() - 12) < 1.5
    inside = np.ones(len(a.items) - 1, dtype=bool)
    inside[a.offsets[1:-1] - 1] = False
    assert (np.diff(a.timestamps)[inside] >= 0).all()
    assert ia["chain_of_user"].shape == (300,)


def empirical_cross_entropy(ds, info):
    """Mean −log P(x_{t+1} | x_t, chain) of the generated data under the true chains."""
    succ, probs, eps, n = info["successors"], info["probs"], info["teleport"], ds.num_items
    total, count = 0.0, 0
    for u in range(ds.num_users):
        c = info["chain_of_user"][u]
        s = ds.sequence(u) - 1
        prev, nxt = s[:-1], s[1:]
        p = np.full(len(prev), eps / n)
        match = succ[c, prev] == nxt[:, None]
        p += (1 - eps) * (probs[c, prev] * match).sum(axis=1)
        total -= np.log(p).sum()
        count += len(prev)
    return total / count


@pytest.mark.parametrize("concentration", [0.1, 1.0, 10.0])
def test_entropy_rate_matches_data(concentration):
    ds, info = markov_mixture(3000, 200, 40, num_chains=2, concentration=concentration, seed=1)
    assert empirical_cross_entropy(ds, info) == pytest.approx(info["entropy_rate"], rel=0.03)


def test_concentration_is_an_entropy_knob():
    rates = [
        markov_mixture(50, 500, 5, concentration=c, seed=0)[1]["entropy_rate"]
        for c in (0.05, 0.5, 5.0)
    ]
    assert rates[0] < rates[1] < rates[2] < np.log(8) + 0.2


def test_scales_to_a_million_interactions_quickly():
    t = time.perf_counter()
    ds, _ = markov_mixture(100_000, 10_000, 10, seed=0)
    assert ds.num_interactions > 900_000
    assert time.perf_counter() - t < 10
