"""Compute-optimal allocation from a fitted joint law."""

from __future__ import annotations

import numpy as np
import pytest

from recscale.errors import RecscaleError
from recscale.scaling.fitting import fit_law
from recscale.scaling.laws import LAWS
from recscale.scaling.optimal import compute_frontier, compute_optimal
from tests.scaling.cases import power_n_table


def test_compute_optimal_matches_brute_force():
    law = LAWS.get("joint")
    nn, dd = np.meshgrid(np.geomspace(1e5, 1e9, 6), np.geomspace(1e7, 1e11, 6))
    x = np.stack([nn.ravel(), dd.ravel()], 1)
    fit = fit_law(law, x, law(x, np.array([1.69, 406.4, 0.34, 410.7, 0.28])), n_boot=0)
    for c in (1e18, 1e21):
        best = compute_optimal(fit, c)
        grid_n = np.geomspace(1e3, c / 6 / 1e3, 200_001)
        losses = law(np.stack([grid_n, c / (6 * grid_n)], 1), fit.theta)
        i = int(np.argmin(losses))
        assert best.params[0] == pytest.approx(grid_n[i], rel=1e-3)
        assert best.loss[0] == pytest.approx(losses[i], rel=1e-9)
        assert best.tokens[0] * best.params[0] * 6 == pytest.approx(c)
        numeric = compute_optimal(fit, c, lambda n: 6 * n)
        assert numeric.params[0] == pytest.approx(best.params[0], rel=1e-4)
    frontier = compute_frontier(fit, 1e18, 1e22, num=5)
    assert np.all(np.diff(frontier.params) > 0) and np.all(np.diff(frontier.loss) < 0)
    with pytest.raises(RecscaleError, match="joint"):
        compute_optimal(fit_law("power_n", power_n_table(), n_boot=0), 1e20)
