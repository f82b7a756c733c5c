"""The scaling report: one self-contained HTML page and a Markdown twin of the same page.

``write_report(results, fits, out_dir, title=..., commands=[...])`` takes the results table (one
row per run, see :mod:`recscale.scaling.sweep`) and the fitted laws as a ``{key: LawReport}``
dict, builds the page once (:func:`recscale.scaling.sections.build_page`) and writes into
``out_dir``:

- ``report.html``: every plot embedded as a base64 PNG, no external assets;
- ``report.md`` with the same tables, referencing ``fig-*.png`` written beside it;
- ``fits.json``: the ``LawReport`` records (``LawReport.from_dict`` reads them back).
"""

from __future__ import annotations

import base64
import html
import json
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from recscale.scaling.figures import build_figures
from recscale.scaling.fitting import FitResult
from recscale.scaling.holdout import Holdout
from recscale.scaling.sections import (
    LawReport,
    Page,
    Table,
    TaskPoints,
    as_reports,
    build_page,
    num_text,
)
from recscale.scaling.summary import SweepSummary, build_summary

__all__ = ["LawReport", "render_html", "render_markdown", "write_report"]

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2330;
max-width:1480px;margin:24px auto;padding:0 20px;line-height:1.45}
h1{font-size:26px;margin-bottom:4px}h2{font-size:20px;margin-top:34px;border-bottom:1px solid
#dde3ec;padding-bottom:4px}h3{font-size:16px;margin:22px 0 6px}
.meta{color:#5b6576;font-size:14px}figure{margin:10px 0 24px}figure img{max-width:100%;
border:1px solid #e4e8ef;border-radius:4px}figcaption{color:#4b5565;font-size:13px;
margin-top:4px}table{border-collapse:collapse;font-size:13px;margin:8px 0 18px;
display:block;overflow-x:auto}th,td{border:1px solid #dde3ec;padding:4px 8px;text-align:right;
white-space:nowrap}th{background:#f3f6fa}td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even){background:#fafbfd}pre{background:#111827;color:#e5e7eb;padding:12px;
border-radius:6px;overflow-x:auto;font-size:13px}code{font-family:Menlo,Consolas,monospace}
.figs{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:8px 28px}
.figs figure{margin:0 0 18px}.figs figure img{width:100%}.figs .wide{grid-column:1/-1}
.figs .wide img{max-width:1100px}.figs h3{margin:6px 0}
@media (max-width:1000px){.figs{grid-template-columns:1fr}}
.summary{background:#f6f8fb;border:1px solid #dde3ec;border-radius:6px;padding:4px 18px 8px}
.summary h2{margin-top:12px;border:0}.summary table{display:table;width:100%;background:#fff}
.summary td{white-space:normal;vertical-align:top}.summary .formula{text-align:left}
.summary .law{color:#4b5565;font-size:12px}.yes{color:#0a7a3e}.no{color:#b42318;font-weight:600}
"""


def write_report(
    results: pl.DataFrame,
    fits: Mapping[str, LawReport | FitResult | Holdout],
    out_dir: str | Path,
    *,
    title: str = "recscale scaling report",
    commands: Sequence[str] = (),
    tasks: TaskPoints | None = None,
    failed: Mapping[str, str] | None = None,
    skipped: Mapping[str, str] | None = None,
    quality: Sequence[Mapping[str, Any]] = (),
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained), ``report.md`` + PNGs and ``fits.json``.

    ``fits`` maps a section name to a :class:`LawReport` (a bare ``FitResult`` or a
    ``Holdout`` is wrapped under its key); ``failed`` names the runs that failed and
    ``skipped`` the fits left out, for the summary the page opens with; ``quality`` holds
    the data-quality rows of the training sets (:func:`recscale.scaling.sections.quality_table`).
    Returns ``(html_path, md_path)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = as_reports(fits)
    figures = build_figures(results, reports, tasks)
    for stale in out.glob("fig-*.png"):  # from an earlier report with other sections
        stale.unlink()
    for f in figures:
        (out / f"{f.slug}.png").write_bytes(f.png)
    html_path = out / "report.html"
    overview = build_summary(results, reports, failed=failed, skipped=skipped, report=html_path)
    page = build_page(
        results,
        reports,
        figures,
        title=title,
        commands=commands,
        tasks=tasks,
        overview=overview,
        quality=quality,
    )
    html_path.write_text(render_html(page), encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(render_markdown(page), encoding="utf-8")
    (out / "fits.json").write_text(json.dumps([r.to_dict() for r in reports], indent=1))
    return html_path, md_path


# ---- HTML ------------------------------------------------------------------------------------
def render_html(page: Page) -> str:
    """The page as one HTML document with its figures embedded."""
    esc = html.escape
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(page.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(page.title)}</h1><p class='meta'>{esc(page.summary)}</p>",
    ]
    if page.overview is not None:
        parts.append(_html_summary(page.overview))
    if page.figures:
        parts.append("<h2>Plots</h2><div class='figs'>")
    for f in page.figures:
        b64 = base64.b64encode(f.png).decode("ascii")
        wide = " class='wide'" if _aspect(f.png) > 2.2 else ""  # multi-panel: the full width
        parts.append(
            f"<div{wide}><h3>{esc(f.title)}</h3><figure><img alt='{esc(f.title)}'"
            f" src='data:image/png;base64,{b64}'><figcaption>{esc(f.caption)}"
            "</figcaption></figure></div>"
        )
    if page.figures:
        parts.append("</div>")
    for s in page.tables:
        parts.append(f"<h2>{esc(s.heading)}</h2><p class='meta'>{esc(s.note)}</p>{_html(s.table)}")
    if page.laws:
        parts.append(
            "<h2>Laws</h2><ul>"
            + "".join(
                f"<li><b>{esc(law.name)}</b>: <code>{esc(law.formula)}</code>"
                f" — least squares ({esc(law.loss)} loss), {law.refits} "
                f"{esc(law.bootstrap)} bootstrap refits. {esc(law.notes)}</li>"
                for law in page.laws
            )
            + "</ul>"
        )
    if page.commands:
        parts.append(
            "<h2>Commands</h2><pre><code>" + esc("\n".join(page.commands)) + "</code></pre>"
        )
    parts.append("</body></html>")
    return "".join(parts)


def _html_summary(summary: SweepSummary) -> str:
    """The box the page opens with: runs, each law's parameters, each held-out prediction."""
    esc = html.escape
    parts = [f"<section class='summary'><h2>Summary</h2><p><b>{esc(summary.headline())}</b>.</p>"]
    if summary.failed:
        parts.append(
            "<ul>"
            + "".join(f"<li>failed: {esc(r)}: {esc(e)}</li>" for r, e in summary.failed.items())
            + "</ul>"
        )
    if summary.fits:
        level = round(100 * summary.fits[0].level)
        head = ["fit", f"fitted parameters ({level}% CI)", "R² (runs)", "held-out run"]
        head += ["predicted [interval]", "measured", "rel. error", "in interval"]
        rows = []
        for fit in summary.fits:
            first = (
                f"<td class='formula'><b>{esc(fit.name)}</b><div class='law'>"
                f"{esc(fit.formula)}</div></td><td class='formula'>"
                + "<br>".join(
                    f"{esc(p)} = {num_text(v)} [{num_text(lo)}, {num_text(hi)}]"
                    for p, v, lo, hi in fit.params
                )
                + f"</td><td>{num_text(fit.r2)} ({fit.points})</td>"
            )
            held = fit.holdout or [None]
            for i, h in enumerate(held):
                lead = first if i == 0 else "<td></td><td></td><td></td>"
                if h is None:
                    rows.append(
                        f"<tr>{lead}<td>–</td><td>–</td><td>–</td><td>–</td><td>–</td></tr>"
                    )
                    continue
                mark = "<span class='yes'>yes</span>" if h.inside else "<span class='no'>no</span>"
                rows.append(
                    f"<tr>{lead}<td>{esc(h.run)}</td><td>{num_text(h.predicted)} "
                    f"[{num_text(h.lo)}, {num_text(h.hi)}]</td><td>{num_text(h.measured)}</td>"
                    f"<td>{num_text(h.rel_error, 'pct')}</td><td>{mark}</td></tr>"
                )
        parts.append(
            "<table><thead><tr>"
            + "".join(
                f"<th class='formula'>{esc(h)}</th>" if i < 2 else f"<th>{esc(h)}</th>"
                for i, h in enumerate(head)
            )
            + "</tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
        )
    if summary.skipped:
        parts.append(
            "<p class='meta'>"
            + "; ".join(f"{esc(n)}: {esc(w)}" for n, w in summary.skipped.items())
            + "</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _aspect(png: bytes) -> float:
    """Width / height of a PNG, from its IHDR chunk."""
    width, height = struct.unpack(">II", png[16:24])
    return width / max(height, 1)


def _html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# ---- Markdown --------------------------------------------------------------------------------
def render_markdown(page: Page) -> str:
    """The page as Markdown; figures are referenced as ``<slug>.png`` beside it."""
    md = [f"# {page.title}", "", page.summary, ""]
    if page.overview is not None:
        md += ["## Summary", ""]
        md += [
            f"  - {ln.strip()}" if ln.startswith(" ") else f"- {ln}" for ln in page.overview.lines()
        ]
        md += [""]
    if page.figures:
        md += ["## Plots", ""]
    for f in page.figures:
        md += [f"### {f.title}", "", f"![{f.title}]({f.slug}.png)", "", f"*{f.caption}*", ""]
    for s in page.tables:
        md += [f"## {s.heading}", "", s.note, "", _markdown(s.table), ""]
    if page.laws:
        md += ["## Laws", ""]
        md += [f"- **{law.name}**: `{law.formula}`. {law.notes}" for law in page.laws]
        md += [""]
    if page.commands:
        md += ["## Commands", "", "```sh", *page.commands, "```", ""]
    return "\n".join(md)


def _markdown(table: Table) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|")

    lines = [
        "| " + " | ".join(map(esc, table.header)) + " |",
        "|" + "|".join("---" for _ in table.header) + "|",
    ]
    lines += ["| " + " | ".join(map(esc, r)) + " |" for r in table.rows]
    return "\n".join(lines)
