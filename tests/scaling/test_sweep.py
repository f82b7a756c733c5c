"""Expanding a sweep spec into named runs."""

from __future__ import annotations

import pytest

from recscale.errors import RecscaleError
from recscale.scaling.sweep import SweepSpec, expand

BASE = {"model": {"backbone": "hstu", "heads": 1}, "train": {"progress": False}}


def test_runs_are_named_from_their_coordinates_or_from_the_point():
    spec = SweepSpec(
        name="s",
        grid={"seed": [1, 2]},
        points=[
            {"model.layers": 2, "model.dim": 16},
            {"name": "pretrain", "model.layers": 1, "model.dim": 8},
        ],
    )
    runs = expand(spec, BASE)
    assert [r.name for r in runs] == [
        "layers2-dim16-seed1",
        "layers2-dim16-seed2",
        "pretrain-seed1",
        "pretrain-seed2",
    ]
    assert runs[2].coords == {"model.layers": 1, "model.dim": 8, "seed": 1}
    assert runs[2].config.model.dim == 8 and runs[2].config.name == "pretrain-seed1"
    alone = expand(SweepSpec(name="s", points=[{"name": "only", "model.dim": 8}]), BASE)
    assert [r.name for r in alone] == ["only"]


def test_two_points_with_one_name_are_refused():
    spec = SweepSpec(name="s", points=[{"name": "x", "model.dim": 8}, {"name": "x"}])
    with pytest.raises(RecscaleError, match="same run 'x'"):
        expand(spec, BASE)
