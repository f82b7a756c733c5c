"""A real sweep on a small file, end to end: runs, failures kept, resume, report with tasks."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml

from recscale.scaling.api import report_sweep
from recscale.scaling.sweep import run_sweep
from tests.train.test_trainer import write_sequences


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    data = write_sequences(root / "cycle.txt", users=50)
    spec = {
        "name": "tiny",
        "holdout": "largest:1",
        "laws": ["power_n:loss"],
        "tasks": ["long-tail"],
        "base": {
            "seed": 0,
            "data": {"name": None, "path": str(data), "format": "sasrec"},
            "model": {"backbone": "hstu", "heads": 1, "max_len": 12},
            "loss": {"name": "full_softmax"},
            "train": {"epochs": 2, "batch_size": 16, "progress": False, "device": "cpu"},
            "eval": {"protocol": "full", "ks": [1, 5, 10]},
        },
        "points": [
            {"model.layers": 1, "model.dim": 8},
            {"model.layers": 1, "model.dim": 16},
            {"model.layers": 2, "model.dim": 16},
            {"model.layers": 2, "model.dim": 24},
            {"model.layers": 1, "model.dim": 12, "data.path": str(root / "missing.txt")},
        ],
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_sweep(path, root / "out", progress=False)
    assert result.finished == 4
    return root / "out"


def test_a_failed_run_is_reported_and_the_others_finish(sweep_dir):
    failures = json.loads((sweep_dir / "failures.json").read_text())
    [(name, error)] = failures.items()
    assert name.startswith("layers1-dim12-path") and "missing.txt" in error
    assert "Traceback" in (sweep_dir / "runs" / name / "error.txt").read_text()
    table = pl.read_csv(sweep_dir / "results.csv")
    assert table.height == 4 and table["non_embedding_params"].n_unique() == 4


def test_running_again_skips_finished_runs(sweep_dir):
    finals = sorted((sweep_dir / "runs").glob("*/final.json"))
    before = {p: p.stat().st_mtime_ns for p in finals}
    result = run_sweep(sweep_dir / "spec.yaml", sweep_dir, progress=False)
    assert result.finished == 4 and len(result.failed) == 1
    assert {p: p.stat().st_mtime_ns for p in finals} == before


def test_report_has_laws_tasks_and_commands(sweep_dir):
    html, md = report_sweep(sweep_dir, tasks=["noise"])
    page = html.read_text()
    assert "Challenge task: long-tail" in page and "Challenge task: noise" in page
    assert page.count("data:image/png;base64,") >= 3  # law, long-tail, noise
    assert "recscale report" in page
    for run in pl.read_csv(sweep_dir / "results.csv")["run"]:
        saved = json.loads((sweep_dir / "runs" / run / "tasks" / "noise.json").read_text())
        assert set(saved["result"]) == {"replace", "delete"}
    text = md.read_text()
    assert "## Challenge task: noise (hr@10)" in text
    assert "replace / 0.5" in text


def test_where_fits_only_the_matching_runs(sweep_dir):
    from recscale.errors import RecscaleError
    from recscale.scaling.api import fit_results, select_rows
    from recscale.scaling.sweep import read_results

    table = read_results(sweep_dir)
    assert select_rows(table, ["layers=1"])["run"].to_list() == [
        r for r in table["run"].to_list() if r.startswith("layers1")
    ]
    assert select_rows(table, ["layers = 2", "dim=24"]).height == 1
    out = fit_results(sweep_dir, law="log_compute", metric="loss", n_boot=5, where=["layers=2"])
    assert sorted(out["fitted_runs"]) == ["layers2-dim16", "layers2-dim24"]
    for bad, message in (
        (["layers"], "column=value"),
        (["colour=red"], "no column"),
        (["layers=two"], "numeric"),
        (["layers=7"], "no run matches"),
    ):
        with pytest.raises(RecscaleError, match=message):
            select_rows(table, bad)
