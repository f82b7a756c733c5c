"""Fitting: recover known laws from noisy points, bootstrap intervals, predict, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recscale.errors import RecscaleError
from recscale.scaling.fitting import FitResult, fit_law, predict
from recscale.scaling.laws import LAWS, effective_data
from tests.scaling.cases import LSRM, PL_GRID, PL_TRUTH, power_n_table


def test_power_n_recovers_the_lsrm_law():
    # a = 0.121 makes the curve nearly flat over 1e5..1e9 (L falls 6.16 -> 5.31), so E, N0 and
    # a trade off against each other; the predictions are pinned much better than N0 is.
    law = LAWS.get("power_n")
    n = np.geomspace(1e5, 1e9, 6)
    rng = np.random.default_rng(0)
    y = law(n[:, None], LSRM) + rng.normal(0, 0.005, n.size)
    fit = fit_law("power_n", n, y, n_boot=100, seed=0)
    assert fit.params["E"] == pytest.approx(4.9, abs=0.15)
    assert fit.params["a"] == pytest.approx(0.121, rel=0.15)
    assert np.log10(fit.params["N0"]) == pytest.approx(np.log10(6.8e5), abs=0.4)
    assert fit.r2 > 0.999
    for p, v in zip(law.params, LSRM, strict=True):
        assert fit.ci[p][0] <= v <= fit.ci[p][1], p
    extrap = fit.predict(np.array([1e10]))
    truth = law(np.array([[1e10]]), LSRM)[0]
    assert extrap.value[0] == pytest.approx(truth, rel=0.01)
    assert extrap.lo[0] <= extrap.value[0] <= extrap.hi[0]


def test_power_n_without_noise_is_exact():
    law = LAWS.get("power_n")
    n = np.geomspace(1e5, 1e9, 6)
    fit = fit_law(law, n, law(n[:, None], LSRM), n_boot=0)
    assert fit.params["a"] == pytest.approx(0.121, rel=1e-4)
    assert fit.params["N0"] == pytest.approx(6.8e5, rel=1e-3)
    assert np.max(np.abs(fit.residuals)) < 1e-8


def test_power_d_and_log_compute_recover_parameters():
    rng = np.random.default_rng(1)
    d = np.geomspace(1e6, 1e9, 7)
    law = LAWS.get("power_d")
    y = law(d[:, None], np.array([3.0, 2e5, 0.3])) + rng.normal(0, 0.003, d.size)
    fit = fit_law(law, d, y, n_boot=0)
    assert fit.params["b"] == pytest.approx(0.3, rel=0.1)
    assert fit.params["E"] == pytest.approx(3.0, abs=0.05)

    c = np.geomspace(1e15, 1e19, 8)
    y = 0.15 + 0.0195 * np.log(c) + rng.normal(0, 0.002, c.size)  # HSTU HR@100 (REFERENCES §4.7)
    fit = fit_law("log_compute", c, y, n_boot=50)
    assert fit.params["q"] == pytest.approx(0.0195, abs=0.001)
    assert fit.params["p"] == pytest.approx(0.15, abs=0.05)


def test_power_metric_fits_a_rising_and_a_falling_metric():
    rng = np.random.default_rng(2)
    n = np.geomspace(1e3, 1e6, 9)
    for c, a in ((0.08, 0.09), (2.0, -0.05)):
        y = c * n**a * (1 + rng.normal(0, 0.005, n.size))
        fit = fit_law("power_metric", n, y, n_boot=0)
        assert fit.params["a"] == pytest.approx(a, abs=0.01)
        assert fit.r2 > 0.95


def test_joint_recovers_chinchilla_parameters():
    law = LAWS.get("joint")
    nn, dd = np.meshgrid(np.geomspace(1e5, 1e8, 5), np.geomspace(1e7, 1e10, 5))
    x = np.stack([nn.ravel(), dd.ravel()], 1)
    truth = np.array([1.69, 406.4, 0.34, 410.7, 0.28])  # Hoffmann et al.
    y = law(x, truth) * (1 + np.random.default_rng(2).normal(0, 0.002, len(x)))
    fit = fit_law(law, x, y, n_boot=0)
    assert fit.params["a"] == pytest.approx(0.34, abs=0.03)
    assert fit.params["b"] == pytest.approx(0.28, abs=0.03)
    assert fit.params["E"] == pytest.approx(1.69, abs=0.1)


def test_performance_law_recovers_its_parameters_on_the_paper_grid():
    law = LAWS.get("performance_law")
    y = law(PL_GRID, PL_TRUTH) + np.random.default_rng(3).normal(0, 0.002, len(PL_GRID))
    fit = fit_law(law, PL_GRID, y, n_boot=20)
    p = fit.params
    # w1..w4 are identifiable; D, w5 and b are not separately (one data size: a constant)
    assert p["w1"] == pytest.approx(0.6, rel=0.2)
    assert p["w2"] == pytest.approx(0.4, rel=0.3)
    assert p["w3"] == pytest.approx(-0.25, abs=0.03)
    assert p["w4"] == pytest.approx(-0.17, abs=0.03)
    assert fit.r2 > 0.95
    assert fit.rmse < 0.003
    # the fitted surface keeps the inverted U over layers with its peak near N = 16
    layers = np.arange(4, 33, dtype=float)
    peak = layers[np.argmax(fit.predict(np.stack([layers, np.full_like(layers, 50)], 1)).value)]
    assert 12 <= peak <= 20


def test_performance_law_with_given_data_size_recovers_w5_and_scale():
    law = LAWS.get("performance_law_data")
    x = np.array(
        [[n, h, frac * 5e7, 1.5 + 0.2 * frac] for frac in (0.1, 0.25, 0.5, 1.0) for n, h in PL_GRID]
    )
    truth = np.array([0.6, 0.4, 0.9, -0.25, -0.17, 0.3, 0.2])  # w1 w2 b w3 w4 w5 kappa
    y = law(x, truth) + np.random.default_rng(4).normal(0, 0.001, len(x))
    fit = fit_law(law, x, y, n_boot=0)
    assert fit.params["w5"] == pytest.approx(0.3, rel=0.15)
    assert fit.params["kappa"] == pytest.approx(0.2, rel=0.3)
    assert fit.params["w3"] == pytest.approx(-0.25, abs=0.03)
    assert effective_data(np.array([2e6]), np.array([2.0]))[0] == pytest.approx(1.0)


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_truth_in_most_trials():
    law = LAWS.get("power_n")
    truth = np.array([2.0, 1e6, 0.3])
    n = np.geomspace(1e5, 1e9, 10)
    rng = np.random.default_rng(5)
    trials, covered, widths = 15, np.zeros(3), []
    for i in range(trials):
        y = law(n[:, None], truth) + rng.normal(0, 0.01, n.size)
        fit = fit_law(law, n, y, n_boot=60, restarts=3, seed=i)
        covered += [
            fit.ci[p][0] <= v <= fit.ci[p][1] for p, v in zip(law.params, truth, strict=True)
        ]
        widths.append(fit.ci["a"][1] - fit.ci["a"][0])
    assert np.all(covered / trials >= 0.7), covered / trials
    assert np.median(widths) < 0.2  # informative, not a trivially wide interval


def test_bootstrap_is_seeded_and_prediction_interval_is_wider():
    law = LAWS.get("power_n")
    n = np.geomspace(1e5, 1e9, 8)
    y = law(n[:, None], np.array([2.0, 1e6, 0.3])) + np.random.default_rng(6).normal(0, 0.01, 8)
    a = fit_law(law, n, y, n_boot=30, seed=7)
    b = fit_law(law, n, y, n_boot=30, seed=7)
    assert a.ci == b.ci
    conf = a.predict(np.array([3e9]))
    pred = a.predict(np.array([3e9]), kind="prediction")
    assert pred.hi[0] - pred.lo[0] > conf.hi[0] - conf.lo[0]
    res = fit_law(law, n, y, n_boot=30, seed=7, bootstrap="residual", loss="soft_l1")
    assert res.params["a"] == pytest.approx(0.3, rel=0.2)


def test_predict_keywords_table_and_json_round_trip():
    table = power_n_table(0.002)
    fit = fit_law("power_n", table, n_boot=20)
    one = predict(fit, params=1e8)
    assert one.value.shape == (1,)
    assert fit.predict(table).value.shape == (6,)
    with pytest.raises(RecscaleError, match="missing non_embedding_params"):
        predict(fit, tokens=1e8)
    back = FitResult.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert back.params == fit.params
    assert predict(back, params=1e8).hi[0] == pytest.approx(one.hi[0])


def test_to_dict_round_trips_exactly_and_summary_is_its_readable_part():
    fit = fit_law("power_n", power_n_table(0.002), n_boot=10)
    d = json.loads(json.dumps(fit.to_dict()))
    assert json.dumps(FitResult.from_dict(d).to_dict()) == json.dumps(d)
    summary = fit.summary()
    assert list(summary) == [
        *("law", "formula", "metric", "params", "ci", "level", "r2"),
        *("rmse", "fitted_runs"),
    ]
    assert summary["ci"] == d["ci"] and summary["fitted_runs"] == fit.runs
