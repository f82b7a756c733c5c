"""The report renders from synthetic results: files, embedded images, tables, commands."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from recscale.scaling.fitting import fit_law
from recscale.scaling.holdout import holdout_check
from recscale.scaling.laws import LAWS
from recscale.scaling.report import LawReport, write_report

METRIC_KS = (1, 5, 10, 20, 50, 100, 200)
PL_TRUTH = np.array([0.6, 0.4, 2.0, 0.9, -0.25, -0.17, 0.5])


def synthetic_results(seed: int = 0) -> pl.DataFrame:
    """A results table in the sweep's contract, drawn from known laws with noise."""
    rng = np.random.default_rng(seed)
    joint = LAWS.get("joint")
    perf = LAWS.get("performance_law")
    rows = []

    def add(backbone: str, layers: int, dim: int, frac: float, hr_shift: float = 0.0) -> None:
        n = 12 * layers * dim**2
        tokens = frac * 1e8
        loss = joint(np.array([[n, tokens]]), np.array([4.0, 20.0, 0.3, 100.0, 0.3]))[0]
        hr10 = perf(np.array([[layers, dim]]), PL_TRUTH)[0] + 0.25 + hr_shift
        hr10 += 0.01 * np.log(frac) + rng.normal(0, 0.002)
        row = {
            "run": f"{backbone}-l{layers}-d{dim}-f{frac:g}",
            "backbone": backbone,
            "layers": layers,
            "dim": dim,
            "heads": 1,
            "max_len": 200,
            "data_fraction": frac,
            "seed": 0,
            "non_embedding_params": n,
            "embedding_params": 3417 * dim,
            "flops_per_token": 6 * n,
            "tokens": tokens,
            "compute": 6 * n * tokens,
            "apen": 1.8,
            "protocol": "full-exclude_history",
            "loss": loss + rng.normal(0, 0.004),
            "mrr": hr10 / 2.5,
            "wall_time_s": n / 1e4,
            "status": "ok",
        }
        for k in METRIC_KS:
            row[f"hr@{k}"] = min(1.0, hr10 * (k / 10) ** 0.35)
            row[f"ndcg@{k}"] = row[f"hr@{k}"] * 0.55
        rows.append(row)

    for layers in (4, 8, 12, 16, 24, 32):
        for dim in (25, 50, 75, 100):
            add("hstu", layers, dim, 1.0)
    for frac in (0.1, 0.25, 0.5):
        for layers, dim in ((4, 50), (16, 100)):
            add("hstu", layers, dim, frac)
    for layers in (4, 8, 16, 32):
        add("sasrec", layers, 50, 1.0, hr_shift=-0.02 - 0.001 * layers)
    return pl.DataFrame(rows)


def synthetic_fits(results: pl.DataFrame, n_boot: int = 40) -> dict[str, LawReport]:
    hstu = results.filter(pl.col("backbone") == "hstu")
    full = hstu.filter(pl.col("data_fraction") == 1.0)
    ladder = full.filter(pl.col("dim") == 50)  # one width: a clean N ladder, 6 sizes
    fits = {
        "loss vs params (HSTU, h = 50)": LawReport.from_holdout(
            "loss vs params (HSTU, h = 50)",
            holdout_check("power_n", ladder, "largest:2", n_boot=n_boot),
        ),
        "joint": LawReport(
            "loss vs params and tokens (HSTU)", fit_law("joint", hstu, n_boot=n_boot)
        ),
        "hr10 compute": LawReport(
            "HR@10 vs compute (HSTU)", fit_law("log_compute", full, metric="hr@10", n_boot=n_boot)
        ),
        "pl hr": LawReport(
            "Performance Law, HR@10 (HSTU)",
            fit_law("performance_law", full, metric="hr@10", n_boot=n_boot),
        ),
        "pl ndcg": LawReport(
            "Performance Law, NDCG@10 (HSTU)",
            fit_law("performance_law", full, metric="ndcg@10", n_boot=n_boot),
        ),
    }
    return fits


COMMANDS = ["recscale sweep configs/sweeps/demo.yaml --out runs/demo", "recscale report runs/demo"]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory):
    results = synthetic_results()
    fits = synthetic_fits(results)
    out = tmp_path_factory.mktemp("report")
    html_path, md_path = write_report(
        results, fits, out, title="Synthetic scaling study", commands=COMMANDS
    )
    return out, html_path, md_path, fits


def test_report_files_exist_and_html_is_self_contained(rendered):
    out, html_path, md_path, _ = rendered
    assert html_path.exists() and md_path.exists() and (out / "fits.json").exists()
    page = html_path.read_text()
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) >= 7  # power_n, data, compute, 2 performance-law, backbones, frontier
    assert not re.search(r"(src|href)=['\"](?!data:)", page), "external asset referenced"
    assert "<table>" in page and "Fitted parameters" in page and "Held-out predictions" in page
    for command in COMMANDS:
        assert command in page


def test_markdown_twin_references_pngs_beside_it(rendered):
    out, _, md_path, _ = rendered
    md = md_path.read_text()
    pngs = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert pngs and all((out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "| held-out run |" in md.replace("fit | metric | ", "")
    assert "```sh" in md and COMMANDS[0] in md


def test_tables_carry_runs_params_and_holdout(rendered):
    _, html_path, _, fits = rendered
    page = html_path.read_text()
    assert "hstu-l32-d50-f1" in page  # a held-out run in the holdout and runs tables
    rep = fits["loss vs params (HSTU, h = 50)"]
    assert [h.run for h in rep.holdout] == ["hstu-l24-d50-f1", "hstu-l32-d50-f1"]
    assert all(abs(h.rel_error) < 0.02 for h in rep.holdout)
    assert "R²" in page and "bootstrap CI" in page


def test_fits_json_round_trips(rendered):
    out, _, _, fits = rendered
    records = json.loads((out / "fits.json").read_text())
    back = [LawReport.from_dict(r) for r in records]
    assert [b.name for b in back] == [f.name for f in fits.values()]
    assert back[0].holdout == fits["loss vs params (HSTU, h = 50)"].holdout
    assert back[2].fit.params == fits["hr10 compute"].fit.params


def test_report_without_fits_or_extra_columns(tmp_path):
    results = synthetic_results().filter(
        pl.col("backbone") == "hstu", pl.col("data_fraction") == 1.0
    )
    html_path, md_path = write_report(results.drop("status"), {}, tmp_path)
    assert "Runs" in html_path.read_text() and md_path.exists()


def test_performance_law_with_data_size_plots(tmp_path):
    law = LAWS.get("performance_law_data")
    grid = [(n, h) for n in (4, 8, 16, 32) for h in (25, 50, 100)]
    x = np.array([[n, h, f * 5e7, 1.5 + 0.2 * f] for f in (0.1, 0.5, 1.0) for n, h in grid])
    y = law(x, np.array([0.6, 0.4, 0.9, -0.25, -0.17, 0.3, 0.2]))
    fit = fit_law(law, x, y, n_boot=5)
    results = pl.DataFrame(
        {"run": [f"r{i}" for i in range(len(x))], "layers": x[:, 0], "dim": x[:, 1]}
    )
    html_path, _ = write_report(results, {"PL with data": fit}, tmp_path)
    assert html_path.read_text().count("data:image/png;base64,") == 1


def test_performance_law_figure_marks_held_out_runs():
    from recscale.scaling.plots import plot_performance_law

    law = LAWS.get("performance_law")
    grid = [(n, h) for n in (1, 2, 4, 8) for h in (16, 32, 64, 96)]
    x = np.array(grid, dtype=float)
    y = law(x, np.array([0.02, 0.03, 1.0, 0.3, 0.5, 0.4, 1.0]))
    table = pl.DataFrame(
        {"run": [f"l{n}-d{h}" for n, h in grid], "layers": x[:, 0], "dim": x[:, 1], "hr@10": y}
    )
    check = holdout_check(law, table, ["l8-d16", "l8-d96"], metric="hr@10", n_boot=5)
    assert [h.inputs["layers"] for h in check.rows] == [8, 8]
    fig = plot_performance_law(check.fit, check.rows)
    heat, scatter, slices = fig.axes[:3]
    assert "held out" in [t.get_text() for t in heat.get_legend().get_texts()]
    assert any("held out" in t.get_text() for t in scatter.get_legend().get_texts())
    assert len(slices.get_lines()) >= 2 * 4  # measured dots and the fitted line per width


def test_data_quality_rows_become_a_table(tmp_path):
    quality = [
        {
            "dataset": "ml-1m-sasrec",
            "max_len": 50,
            "tokens": 294_000,
            "apen": 0.0247,
            "lz_entropy_rate": 5.1,
            "shannon_entropy_bits": 10.9,
            "compression_ratio": 0.41,
            "tokens_x_apen": 7261.8,
        }
    ]
    _, md_path = write_report(synthetic_results(), {}, tmp_path, quality=quality)
    md = md_path.read_text()
    assert "## Data quality" in md and "tokens × ApEn" in md and "ml-1m-sasrec" in md
    assert "0.0247" in md
    assert (
        "Data quality" not in write_report(synthetic_results(), {}, tmp_path / "b")[1].read_text()
    )


@pytest.mark.integration
def test_sweep_quality_measures_each_training_set_once(tmp_path):
    from recscale.config import dump_yaml
    from recscale.data.quality import data_quality
    from recscale.scaling.api import sweep_quality
    from recscale.train import load_run_config
    from recscale.train.data import prepare_data

    cfg = load_run_config(overrides=["data.name=ml-100k", "model.max_len=20"])
    for run in ("a", "b"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        dump_yaml(cfg, tmp_path / "runs" / run / "config.yaml")
    rows = sweep_quality(tmp_path, pl.DataFrame({"run": ["a", "b"]}))
    assert len(rows) == 1 and rows[0]["dataset"] == "ml-100k" and rows[0]["max_len"] == 20
    _, split = prepare_data(cfg.data, cfg.seed)
    assert rows[0]["tokens"] == int(np.minimum(split.train.lengths, 20).sum())
    assert rows[0]["apen"] == pytest.approx(data_quality(split.train, 2, 0.2, 20)["apen"])
    assert rows[0]["tokens_x_apen"] == pytest.approx(rows[0]["tokens"] * rows[0]["apen"])
