"""The report's figures come from the plot-kind registry, in a fixed order."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from recscale.errors import RecscaleError
from recscale.scaling.figures import PLOT_KINDS, build_figures
from recscale.scaling.fitting import fit_law
from recscale.scaling.laws import LAWS
from recscale.scaling.sections import LawReport


def test_every_law_has_a_registered_plot_kind():
    for name in LAWS.names():
        assert LAWS.get(name).plot in PLOT_KINDS, name


def _fits() -> dict[str, LawReport]:
    x = np.geomspace(1e5, 1e9, 5)
    y = 2.0 + (1e6 / x) ** 0.3
    return {
        "c": LawReport("compute", fit_law("log_compute", x * 1e3, y, n_boot=0)),
        "d": LawReport("data", fit_law("power_d", x, y, n_boot=0)),
        "n": LawReport("params", fit_law("power_n", x, y, n_boot=0)),
    }


def test_figures_follow_the_kind_order_and_the_fits_within_a_kind():
    results = pl.DataFrame({"run": ["a", "b"], "compute": [1e8, 1e9], "hr@10": [0.1, 0.2]})
    fits = _fits()
    figures = build_figures(results, list(fits.values()))
    # vs_data and vs_params share a place (in the order given), vs_compute comes after
    assert [f.slug for f in figures] == ["fig-01-power_d", "fig-02-power_n", "fig-03-compute"]
    assert [f.title for f in figures] == ["data", "params", "compute"]
    assert all(f.png[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)


def test_a_law_with_an_unknown_plot_kind_is_refused():
    rep = _fits()["n"]
    odd = LawReport("odd", replace(rep.fit, law=replace(rep.fit.law, plot="pie")))
    with pytest.raises(RecscaleError, match="unknown plot kind 'pie'; known: frontier"):
        build_figures(pl.DataFrame({"run": ["a"]}), [odd])


def _item_runs() -> pl.DataFrame:
    sizes = [1e4, 4e4, 1e4, 4e4, 4e4, 4e4]
    return pl.DataFrame(
        {
            "run": ["id-s", "id-m", "text-s", "text-m", "cold-id", "cold-text"],
            "backbone": ["hstu"] * 6,
            "non_embedding_params": sizes,
            "item_features": ["id", "id", "text", "text", "id", "text"],
            "split": ["leave_one_out"] * 4 + ["cold_items"] * 2,
            "hr@10": [0.20, 0.24, 0.22, 0.26, 0.05, 0.09],
            "ndcg@10": [0.10, 0.12, 0.11, 0.13, 0.02, 0.04],
        }
    )


def test_item_feature_runs_get_their_own_figure_and_cold_runs_stay_out():
    figures = build_figures(_item_runs(), [])
    assert [f.slug for f in figures] == ["fig-01-item-features"]
    assert figures[0].png[:8] == b"\x89PNG\r\n\x1a\n"
    # one way of building items: nothing to compare
    assert build_figures(_item_runs().filter(pl.col("item_features") == "id"), []) == []


def test_semantic_id_runs_get_a_size_figure():
    runs = pl.DataFrame(
        {
            "run": ["sid-s", "sid-m", "id-s", "id-m"],
            "backbone": ["llama-semantic-ids"] * 2 + ["llama"] * 2,
            "non_embedding_params": [1e4, 4e4, 1e4, 4e4],
            "layers": [1, 1, 1, 1],
            "dim": [16, 32, 16, 32],
            "code_levels": [3, 3, None, None],
            "hr@10": [0.15, 0.18, 0.20, 0.24],
            "ndcg@10": [0.07, 0.09, 0.10, 0.12],
            "loss": [None, None, 6.1, 6.0],
        }
    )
    slugs = [f.slug.split("-", 2)[2] for f in build_figures(runs, [])]
    assert slugs.count("semantic-ids") == 1
    assert "semantic-ids" not in [f.slug for f in build_figures(runs.drop("code_levels"), [])]
