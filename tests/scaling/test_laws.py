"""Laws and fitting: recover known laws from noisy points, intervals, holdout, compute-optimal."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from recscale.errors import RecscaleError
from recscale.scaling.fitting import (
    FitResult,
    compute_frontier,
    compute_optimal,
    fit_law,
    holdout_check,
    predict,
    select_holdout,
)
from recscale.scaling.laws import LAWS, effective_data

LSRM = np.array([4.9, 6.8e5, 0.121])  # Zhang et al. ML-20M: E, N0, a (REFERENCES §1.3)
PL_GRID = np.array([(n, h) for n in (4, 8, 12, 16, 24, 32) for h in (25, 50, 75, 100)], float)
# an inverted U over layers (peak at N = 2^(1/0.25) = 16) and over dim (peak near 60)
PL_TRUTH = np.array([0.6, 0.4, 2.0, 0.9, -0.25, -0.17, 0.5])  # w1, w2, D, b, w3, w4, w5


def test_registry_lists_every_form_with_its_declaration():
    for name in (
        "power_n",
        "power_d",
        "joint",
        "log_compute",
        "performance_law",
        "performance_law_data",
    ):
        law = LAWS.get(name)
        assert law.formula and law.inputs and law.params
        assert law.starts(
            np.ones((len(law.params) + 1, len(law.inputs))) * 2.0,
            np.linspace(1, 2, len(law.params) + 1),
        )
    with pytest.raises(RecscaleError, match="known: "):
        LAWS.get("nope")


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


def test_performance_law_official_model_function():
    # y = w1(-1/u1 - w3 ln N) + w2(-1/u2 - w4 ln h) + (-1/u3 - w5 ln D) + b, pf1 = pf2 = 2
    w1, w2, d, b, w3, w4, w5 = 0.3, 0.2, 3.0, 0.1, 0.5, 0.4, 0.7
    n, h = 8.0, 50.0
    u1, u2, u3 = 2 * n**w3, 2 * h**w4, 2 * d**w5
    want = w1 * (-1 / u1 - w3 * np.log(n)) + w2 * (-1 / u2 - w4 * np.log(h))
    want += (-1 / u3 - w5 * np.log(d)) + b
    got = LAWS.get("performance_law")(np.array([[n, h]]), np.array([w1, w2, d, b, w3, w4, w5]))
    assert got[0] == pytest.approx(want, rel=1e-12)


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


def _table(metric_noise: float = 0.0) -> pl.DataFrame:
    law = LAWS.get("power_n")
    n = np.geomspace(1e5, 1e9, 6)
    loss = law(n[:, None], LSRM) + np.random.default_rng(8).normal(0, metric_noise, n.size)
    return pl.DataFrame(
        {
            "run": [f"hstu-{i}" for i in range(6)],
            "non_embedding_params": n,
            "loss": loss,
            "tokens": np.full(6, 1e8),
        }
    )


def test_holdout_excludes_the_held_out_runs_from_the_fit():
    table = _table(0.003)
    result = holdout_check("power_n", table, "largest:2", n_boot=50)
    assert [r.run for r in result.rows] == ["hstu-4", "hstu-5"]  # in table order
    assert set(result.fit.runs) == {f"hstu-{i}" for i in range(4)}
    assert len(result.fit.y) == 4
    # corrupting the held-out measurements changes nothing in the fit, only the errors
    wild = table.with_columns(
        pl.when(pl.col("run").is_in(["hstu-4", "hstu-5"]))
        .then(pl.col("loss") * 3)
        .otherwise(pl.col("loss"))
        .alias("loss")
    )
    again = holdout_check("power_n", wild, "largest:2", n_boot=50)
    assert again.fit.params == result.fit.params
    for r, w in zip(result.rows, again.rows, strict=True):
        assert r.predicted == w.predicted
        assert abs(r.rel_error) < 0.02
        assert w.rel_error == pytest.approx(r.predicted / (3 * r.measured) - 1)
        assert not w.inside


def test_holdout_by_name_and_errors():
    table = _table(0.003)
    result = holdout_check("power_n", table, ["hstu-0", "hstu-5"], n_boot=0)
    assert [r.run for r in result.rows] == ["hstu-0", "hstu-5"]
    assert select_holdout(table, "smallest:1") == ["hstu-0"]
    with pytest.raises(RecscaleError, match="not in the results table"):
        select_holdout(table, ["nope"])
    with pytest.raises(RecscaleError, match="largest:K"):
        select_holdout(table, "biggest:2")
    with pytest.raises(RecscaleError, match="at least 3 runs"):
        holdout_check("power_n", table, "largest:4")


def test_predict_keywords_table_and_json_round_trip():
    table = _table(0.002)
    fit = fit_law("power_n", table, n_boot=20)
    one = predict(fit, params=1e8)
    assert one.value.shape == (1,)
    assert fit.predict(table).value.shape == (6,)
    with pytest.raises(RecscaleError, match="missing non_embedding_params"):
        predict(fit, tokens=1e8)
    back = FitResult.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert back.params == fit.params
    assert predict(back, params=1e8).hi[0] == pytest.approx(one.hi[0])


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
        compute_optimal(fit_law("power_n", _table(), n_boot=0), 1e20)
