"""The shared-shape fit with one constant per data set recovers known constants."""

from __future__ import annotations

import numpy as np
import pytest

from recscale.scaling.data_term import bootstrap_data_terms, correlation_interval, fit_data_terms
from recscale.scaling.laws import PF1, _factor


def synthetic(noise: float, seed: int = 0):
    grid = [(n, h) for n in (1, 2, 4, 8) for h in (16, 32, 64)]
    constants = {"a": 0.10, "b": 0.25, "c": 0.05}
    rows = [(n, h, g) for g in constants for n, h in grid]
    n, h = (np.array([r[i] for r in rows], float) for i in (0, 1))
    groups = np.array([r[2] for r in rows])
    y = 0.02 * _factor(-0.3, n, PF1) + 0.03 * _factor(-0.2, h, PF1)
    y = y + np.array([constants[g] for g in groups])
    y = y + np.random.default_rng(seed).normal(0, noise, len(y))
    return n, h, y, groups, constants


def test_recovers_shared_shape_and_constants():
    n, h, y, groups, constants = synthetic(noise=0.0)
    fit = fit_data_terms(n, h, y, groups)
    assert fit.groups == ("a", "b", "c")
    assert fit.r2 == pytest.approx(1.0, abs=1e-6)
    assert fit.w["w3"] == pytest.approx(-0.3, abs=0.02)
    assert fit.w["w4"] == pytest.approx(-0.2, abs=0.02)
    # The constants are identified up to nothing: no separate intercept competes with them.
    assert fit.constants == pytest.approx([constants[g] for g in fit.groups], abs=2e-3)


def test_bootstrap_spreads_with_noise_and_correlation_reads_the_order():
    n, h, y, groups, _ = synthetic(noise=0.003)
    fit = fit_data_terms(n, h, y, groups)
    boot = bootstrap_data_terms(n, h, y, groups, n_boot=20)
    assert boot.shape == (20, 3) and boot.std(0).max() > 0
    r, lo, hi = correlation_interval(fit.constants, boot, np.array([1.0, 2.5, 0.5]))
    assert r > 0.95 and lo <= r <= hi
    assert correlation_interval(fit.constants, boot, -np.array([1.0, 2.5, 0.5]))[0] < -0.95
