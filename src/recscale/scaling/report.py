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
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from recscale.scaling.figures import build_figures
from recscale.scaling.fitting import FitResult
from recscale.scaling.holdout import Holdout
from recscale.scaling.sections import LawReport, Page, Table, TaskPoints, as_reports, build_page

__all__ = ["LawReport", "render_html", "render_markdown", "write_report"]

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d2330;
max-width:1200px;margin:24px auto;padding:0 20px;line-height:1.45}
h1{font-size:26px;margin-bottom:4px}h2{font-size:20px;margin-top:34px;border-bottom:1px solid
#dde3ec;padding-bottom:4px}h3{font-size:16px;margin:22px 0 6px}
.meta{color:#5b6576;font-size:14px}figure{margin:10px 0 24px}figure img{max-width:100%;
border:1px solid #e4e8ef;border-radius:4px}figcaption{color:#4b5565;font-size:13px;
margin-top:4px}table{border-collapse:collapse;font-size:13px;margin:8px 0 18px;
display:block;overflow-x:auto}th,td{border:1px solid #dde3ec;padding:4px 8px;text-align:right;
white-space:nowrap}th{background:#f3f6fa}td:first-child,th:first-child{text-align:left}
tbody tr:nth-child(even){background:#fafbfd}pre{background:#111827;color:#e5e7eb;padding:12px;
border-radius:6px;overflow-x:auto;font-size:13px}code{font-family:Menlo,Consolas,monospace}
"""


def write_report(
    results: pl.DataFrame,
    fits: Mapping[str, LawReport | FitResult | Holdout],
    out_dir: str | Path,
    *,
    title: str = "recscale scaling report",
    commands: Sequence[str] = (),
    tasks: TaskPoints | None = None,
) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained), ``report.md`` + PNGs and ``fits.json``.

    ``fits`` maps a section name to a :class:`LawReport` (a bare ``FitResult`` or a
    ``Holdout`` is wrapped under its key). Returns ``(html_path, md_path)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports = as_reports(fits)
    figures = build_figures(results, reports, tasks)
    for stale in out.glob("fig-*.png"):  # from an earlier report with other sections
        stale.unlink()
    for f in figures:
        (out / f"{f.slug}.png").write_bytes(f.png)
    page = build_page(results, reports, figures, title=title, commands=commands, tasks=tasks)
    html_path = out / "report.html"
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
    if page.figures:
        parts.append("<h2>Plots</h2>")
    for f in page.figures:
        b64 = base64.b64encode(f.png).decode("ascii")
        parts.append(
            f"<h3>{esc(f.title)}</h3><figure><img alt='{esc(f.title)}'"
            f" src='data:image/png;base64,{b64}'><figcaption>{esc(f.caption)}"
            "</figcaption></figure>"
        )
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
