"""A ranking sweep end to end: rankers over blocks, its results table and its report."""

from __future__ import annotations

import polars as pl
import yaml

from recscale.scaling.api import report_sweep
from recscale.scaling.sweep import run_sweep


def test_a_ranking_sweep_reports_auc_by_blocks_and_variants(tmp_path):
    spec = {
        "name": "rank",
        "laws": ["log_compute:auc"],
        "holdout": "largest:1",
        "base": {
            "task": "ranking",
            "data": {"name": "ml-100k"},
            "model": {"backbone": "hstu", "dim": 8, "heads": 1, "max_len": 11},
            "train": {"epochs": 1, "batch_size": 256, "progress": False, "device": "cpu"},
        },
        "points": [
            {"name": "hstu-1", "model.layers": 1},
            {"name": "hstu-2", "model.layers": 2},
            {"name": "hstu-3", "model.layers": 3},
            {"name": "llama-1", "model.backbone": "llama", "model.layers": 1},
            {"name": "llama-2", "model.backbone": "llama", "model.layers": 2},
            {"name": "din", "ranking.ranker": "din", "model.layers": 1},
            {"name": "din-mlp", "ranking.ranker": "din", "ranking.scorer": "mlp"},
            {"name": "hstu-1-neg0.5", "model.layers": 1, "ranking.negative_ratio": 0.5},
        ],
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert run_sweep(path, tmp_path / "out", progress=False).finished == 8
    table = pl.read_csv(tmp_path / "out" / "results.csv")
    assert set(table["backbone"]) == {"hstu", "llama", "din"}
    assert set(table["scorer"]) == {"dot", "mlp"} and table["auc"].is_between(0, 1).all()
    _, md = report_sweep(tmp_path / "out")
    text = md.read_text()
    assert "Ranking: AUC, GAUC and logloss by blocks" in text
    assert "Ranking: negative-sampling ratio and scoring network" in text
    assert "log_compute on auc" in text  # the law fitted to AUC, with its held-out run
    assert len(list(md.parent.glob("fig-*ranking*.png"))) == 2
