"""The summary a report opens with, and the terminal prints: runs, laws, held-out runs."""

from __future__ import annotations

import re

import pytest

from recscale.scaling.report import write_report
from recscale.scaling.sections import as_reports
from recscale.scaling.summary import build_summary, read_summary
from tests.scaling.test_report import synthetic_fits, synthetic_results


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory):
    """A reported "sweep directory": results table, a report, a failed run, a skipped fit."""
    out = tmp_path_factory.mktemp("sweep")
    results = synthetic_results()
    fits = synthetic_fits(results, n_boot=5)
    results.write_parquet(out / "results.parquet")
    (out / "failures.json").write_text('{"bad-run": "ValueError: boom"}')
    (out / "report_notes.json").write_text('{"power_d on loss": "skipped: no tokens"}')
    write_report(results, fits, out / "report", failed={"bad-run": "ValueError: boom"})
    return out, results, fits


def test_summary_states_runs_parameters_and_each_holdout(sweep):
    _, results, fits = sweep
    reports = as_reports(fits)
    summary = build_summary(results, reports, failed={"bad-run": "ValueError: boom"})
    assert summary.headline() == f"{results.height + 1} runs: {results.height} finished, 1 failed"
    lines = summary.lines()
    assert "  failed: bad-run: ValueError: boom" in lines
    rep = reports[0]
    assert f"{rep.name}: {rep.fit.law.formula}" in lines
    fitted = next(x for x in lines if x.startswith(f"  fitted on {len(rep.fit.y)} runs"))
    assert all(f"{p} = " in fitted for p in rep.fit.law.params) and "95% intervals" in fitted
    held = [x for x in lines if x.startswith("  held out ")]
    assert len(held) == sum(len(r.holdout) for r in reports)
    first = rep.holdout[0]
    assert held[0].startswith(f"  held out {first.run}: predicted ")
    assert ("inside the interval" if first.inside else "OUTSIDE the interval") in held[0]


def test_report_opens_with_the_summary_and_lays_figures_out_in_a_grid(sweep):
    out = sweep[0]
    page = (out / "report" / "report.html").read_text()
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Plots</h2>")
    assert "finished, 1 failed" in page and "in interval" in page
    assert "<div class='figs'>" in page and page.count("<div class='wide'>") >= 1  # 3 panels
    md = (out / "report" / "report.md").read_text()
    assert md.index("## Summary") < md.index("## Plots")
    assert re.search(r"^  - held out \S+: predicted ", md, flags=re.M)


def test_read_summary_from_a_reported_sweep_directory(sweep):
    out, _, fits = sweep
    summary = read_summary(out)
    assert summary.report == str(out / "report" / "report.html")
    assert summary.skipped == {"power_d on loss": "skipped: no tokens"}
    assert summary.failed == {"bad-run": "ValueError: boom"}
    assert [f.name for f in summary.fits] == [r.name for r in as_reports(fits)]
    assert summary.lines()[-1] == "power_d on loss: skipped: no tokens"
