"""The report's page model: built once from the results and fits, rendered twice."""

from __future__ import annotations

from recscale.scaling.report import render_html, render_markdown
from recscale.scaling.sections import RUN_COLUMNS, as_reports, build_page
from recscale.train.record import RESULT_COLUMNS
from tests.scaling.test_report import synthetic_fits, synthetic_results


def test_runs_table_columns_are_results_columns_or_metrics():
    metrics = {"loss", "hr@10", "ndcg@10", "mrr"}
    assert set(RUN_COLUMNS) - metrics <= set(RESULT_COLUMNS)


def test_one_page_renders_as_html_and_markdown_with_the_same_sections():
    results = synthetic_results()
    reports = as_reports(synthetic_fits(results, n_boot=5))
    page = build_page(results, reports, [], title="T & <u>", commands=["recscale report x"])
    assert [s.heading for s in page.tables] == ["Fitted parameters", "Held-out predictions", "Runs"]
    assert page.tables[2].note.startswith("Same in every run: heads = 1")
    html, md = render_html(page), render_markdown(page)
    for section in page.tables:
        assert f"<h2>{section.heading}</h2>" in html and f"## {section.heading}" in md
    assert "<title>T &amp; &lt;u&gt;</title>" in html and md.startswith("# T & <u>")
    assert "Plots" not in html and "## Plots" not in md  # no figures given
    assert [law.name for law in page.laws] == [r.name for r in reports]
