"""Holdout checks: held-out runs stay out of the fit and are scored against what they measured."""

from __future__ import annotations

import json

import polars as pl
import pytest

from recscale.errors import RecscaleError
from recscale.scaling.holdout import HoldoutRow, holdout_check, select_holdout
from tests.scaling.cases import power_n_table


def test_holdout_excludes_the_held_out_runs_from_the_fit():
    table = power_n_table(0.003)
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
    table = power_n_table(0.003)
    result = holdout_check("power_n", table, ["hstu-0", "hstu-5"], n_boot=0)
    assert [r.run for r in result.rows] == ["hstu-0", "hstu-5"]
    assert select_holdout(table, "smallest:1") == ["hstu-0"]
    with pytest.raises(RecscaleError, match="not in the results table"):
        select_holdout(table, ["nope"])
    with pytest.raises(RecscaleError, match="largest:K"):
        select_holdout(table, "biggest:2")
    with pytest.raises(RecscaleError, match="at least 3 runs"):
        holdout_check("power_n", table, "largest:4")


def test_holdout_rows_round_trip_through_json():
    rows = holdout_check("power_n", power_n_table(0.003), "largest:2", n_boot=10).rows
    back = [HoldoutRow.from_dict(json.loads(json.dumps(r.to_dict()))) for r in rows]
    assert back == rows and back[0].inputs == rows[0].inputs
