"""The scaling report: one self-contained HTML page and a Markdown twin.

``write_report(results, fits, out_dir, title=..., commands=[...])`` takes the results table (one
row per run, see :mod:`recscale.scaling.sweep`) and the fitted laws as a ``{key: LawReport}``
dict, and writes into ``out_dir``:

- ``report.html``: every plot embedded as a base64 PNG, no external assets;
- ``report.md`` with the same tables, referencing ``fig-*.png`` written beside it;
- ``fits.json``: the ``LawReport`` records (``LawReport.from_dict`` reads them back).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from recscale.scaling import plots
from recscale.scaling.fitting import FitResult, Holdout, HoldoutRow

RUN_COLUMNS = (
    "run",
    "backbone",
    "layers",
    "dim",
    "heads",
    "max_len",
    "data_fraction",
    "seed",
    "non_embedding_params",
    "tokens",
    "compute",
    "apen",
    "loss",
    "hr@10",
    "ndcg@10",
    "mrr",
    "status",
)
CROSS_METRICS = ("loss", "hr@10", "ndcg@10")


@dataclass
class LawReport:
    """One fitted law as the report shows it.

    ``name`` titles its section ("loss vs params, HSTU"); ``fit`` is the fit (its law and
    metric included); ``holdout`` the held-out runs predicted by it (empty when none were).
    """

    name: str
    fit: FitResult
    holdout: list[HoldoutRow] = field(default_factory=list)

    @property
    def law(self) -> str:
        return self.fit.law.name

    @property
    def metric(self) -> str:
        return self.fit.metric

    @classmethod
    def from_holdout(cls, name: str, result: Holdout) -> LawReport:
        return cls(name=name, fit=result.fit, holdout=list(result.rows))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "law": self.law,
            "metric": self.metric,
            "fit": self.fit.to_dict(),
            "holdout": [h.to_dict() for h in self.holdout],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LawReport:
        return cls(
            name=d["name"],
            fit=FitResult.from_dict(d["fit"]),
            holdout=[HoldoutRow.from_dict(h) for h in d.get("holdout", [])],
        )


# ---- formatting ------------------------------------------------------------------------------
def _num(v: Any, kind: str = "g") -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return f"{v:,}" if abs(v) < 1e7 else f"{v:.3e}"
    if isinstance(v, float | np.floating):
        if kind == "pct":
            return f"{100 * v:+.2f}%"
        a = abs(v)
        return f"{v:.3e}" if (a >= 1e5 or (0 < a < 1e-3)) else f"{v:.4g}"
    return str(v)


@dataclass
class _Table:
    header: list[str]
    rows: list[list[str]]

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def md(self) -> str:
        def esc(c: str) -> str:
            return c.replace("|", "\\|")

        lines = [
            "| " + " | ".join(map(esc, self.header)) + " |",
            "|" + "|".join("---" for _ in self.header) + "|",
        ]
        lines += ["| " + " | ".join(map(esc, r)) + " |" for r in self.rows]
        return "\n".join(lines)


RUN_HEADERS = {
    "non_embedding_params": "N (non-emb.)",
    "data_fraction": "data frac.",
    "tokens": "tokens D",
    "compute": "C (FLOPs)",
}
SI_COLUMNS = ("non_embedding_params", "tokens", "compute")


def _si(v: Any) -> str:
    if v is None:
        return "–"
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def runs_table(results: pl.DataFrame) -> tuple[_Table, str]:
    """The runs, one row each; columns equal in every run move to a one-line note."""
    cols = [c for c in RUN_COLUMNS if c in results.columns]
    constant = [c for c in cols if c != "run" and results.height > 1 and results[c].n_unique() == 1]
    note = ", ".join(f"{c} = {_num(results[c][0])}" for c in constant)
    cols = [c for c in cols if c not in constant]
    sort = [c for c in ("backbone", "non_embedding_params", "data_fraction") if c in cols]
    table = results.sort(sort) if sort else results
    rows = [
        [_si(v) if c in SI_COLUMNS else _num(v) for c, v in zip(cols, row, strict=True)]
        for row in table.select(cols).iter_rows()
    ]
    return _Table([RUN_HEADERS.get(c, c) for c in cols], rows), note


def params_table(reports: Sequence[LawReport]) -> _Table:
    rows = []
    for rep in reports:
        f = rep.fit
        pct = round(100 * f.level)
        for i, p in enumerate(f.law.params):
            lo, hi = f.ci[p]
            rows.append(
                [
                    rep.name if i == 0 else "",
                    f.law.name if i == 0 else "",
                    rep.metric if i == 0 else "",
                    p,
                    _num(f.params[p]),
                    f"[{_num(lo)}, {_num(hi)}]",
                    _num(f.r2) if i == 0 else "",
                    str(len(f.y)) if i == 0 else "",
                ]
            )
    return _Table(
        [
            "fit",
            "law",
            "metric",
            "parameter",
            "estimate",
            f"{pct if reports else 95}% bootstrap CI",
            "R²",
            "points",
        ],
        rows,
    )


def holdout_table(reports: Sequence[LawReport]) -> _Table:
    rows = []
    for rep in reports:
        for h in rep.holdout:
            rows.append(
                [
                    rep.name,
                    rep.metric,
                    h.run,
                    _num(h.predicted),
                    f"[{_num(h.lo)}, {_num(h.hi)}]",
                    _num(h.measured),
                    _num(h.rel_error, "pct"),
                    _num(h.inside),
                ]
            )
    return _Table(
        [
            "fit",
            "metric",
            "held-out run",
            "predicted",
            "interval",
            "measured",
            "rel. error",
            "inside",
        ],
        rows,
    )


# ---- figures ---------------------------------------------------------------------------------
@dataclass
class _Figure:
    slug: str
    title: str
    caption: str
    png: bytes


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


TaskPoints = Mapping[str, Sequence[tuple[str, float, dict[str, dict]]]]
"""Challenge-task results per task: ``(run, non-embedding params, {series: metrics})``."""
TASK_METRIC = "hr@10"


def task_table(points: Sequence[tuple[str, float, dict[str, dict]]], metric: str) -> _Table:
    """One row per group or rate, one column per run (smallest model first)."""
    from recscale.scaling.plots import natural_key

    runs = sorted(points, key=lambda p: p[1])
    labels = sorted({label for _, _, series in runs for label in series}, key=natural_key)
    header = ["group"] + [f"{name} (N={_si(n)})" for name, n, _ in runs]
    rows = [
        [label] + [_num(series.get(label, {}).get(metric)) for _, _, series in runs]
        for label in labels
    ]
    return _Table(header, rows)


def _figures(
    results: pl.DataFrame, reports: Sequence[LawReport], tasks: TaskPoints | None = None
) -> list[_Figure]:
    out: list[_Figure] = []

    def add(slug: str, title: str, caption: str, fig: Figure) -> None:
        out.append(_Figure(f"fig-{len(out) + 1:02d}-{slug}", title, caption, _png(fig)))

    with plots.style():
        for rep in reports:
            if rep.law in ("power_n", "power_d"):
                add(
                    rep.law,
                    rep.name,
                    f"{rep.fit.law.formula}. Filled dots: runs in the fit; diamonds with bars: "
                    "predictions for held-out runs and their bootstrap prediction interval; "
                    "open squares: what those runs measured (label: relative error).",
                    plots.plot_one_input_law(rep.fit, rep.holdout, title=rep.name),
                )
        data_fits = [r.fit for r in reports if r.law in ("power_d", "joint")]
        if (
            "data_fraction" in results.columns
            and results["data_fraction"].n_unique() > 1
            and "loss" in results.columns
        ):
            add(
                "data",
                "Loss vs training tokens",
                "Each colour is one model size trained on a fraction of the data; lines are "
                "the fitted joint law at that size.",
                plots.plot_data_scaling(results, data_fits),
            )
        for rep in reports:
            if rep.law == "log_compute":
                add(
                    "compute",
                    rep.name,
                    f"{rep.fit.law.formula}. {rep.fit.law.notes}",
                    plots.plot_compute_law(results, rep.fit, rep.holdout),
                )
        for rep in reports:
            if rep.law.startswith("performance_law"):
                add(
                    rep.law,
                    rep.name,
                    f"{rep.fit.law.formula}. {rep.fit.law.notes}",
                    plots.plot_performance_law(rep.fit),
                )
        if "backbone" in results.columns and results["backbone"].n_unique() > 1:
            add(
                "backbones",
                "Cross-backbone scaling",
                "Mean over seeds at the full data size; a backbone that keeps improving as "
                "blocks are added scales.",
                plots.plot_cross_backbone(results, CROSS_METRICS),
            )
        for rep in reports:
            if rep.law == "joint":
                c = rep.fit.x[:, 0] * rep.fit.x[:, 1] * 6
                budgets = np.geomspace(c.min(), c.max() * 100, 60)
                add(
                    "frontier",
                    f"Compute-optimal frontier ({rep.name})",
                    "N and D minimising the fitted joint law at each compute budget, "
                    "extrapolated 100x past the largest run.",
                    plots.plot_frontier(rep.fit, budgets),
                )
        for task, points in (tasks or {}).items():
            add(
                f"task-{task}",
                f"Challenge task: {task}",
                f"{TASK_METRIC} per group (or noise rate, visible history, horizon) against "
                "model size; see the task's table for the numbers.",
                plots.plot_task(task, [(n, series) for _, n, series in points], TASK_METRIC),
            )
    return out


# ---- the page --------------------------------------------------------------------------------
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


def _as_reports(fits: Mapping[str, LawReport | FitResult | Holdout]) -> list[LawReport]:
    out = []
    for key, v in fits.items():
        if isinstance(v, LawReport):
            out.append(v)
        elif isinstance(v, Holdout):
            out.append(LawReport.from_holdout(key, v))
        else:
            out.append(LawReport(name=key, fit=v))
    return out


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
    reports = _as_reports(fits)
    figures = _figures(results, reports, tasks)
    for stale in out.glob("fig-*.png"):  # from an earlier report with other sections
        stale.unlink()
    for f in figures:
        (out / f"{f.slug}.png").write_bytes(f.png)
    n_runs = results.height
    summary = f"{n_runs} runs"
    if "status" in results.columns and results["status"].n_unique() > 1:
        counts = results["status"].value_counts(sort=True).iter_rows()
        summary += " (" + ", ".join(f"{n} {status}" for status, n in counts) + ")"
    if "protocol" in results.columns:
        summary += "; protocol: " + ", ".join(map(str, results["protocol"].unique().sort()))
    runs, constant = runs_table(results)
    runs_note = f"Same in every run: {constant}." if constant else ""
    params_note = (
        "Percentile intervals of bootstrap refits. Parameters a law cannot identify "
        "from these runs (see Laws) get wide, meaningless intervals."
    )
    holdout_note = (
        "Each held-out run was left out of its fit; the interval is the bootstrap "
        "prediction interval (parameter uncertainty plus residual noise)."
    )
    sections = [
        ("Fitted parameters", params_table(reports), params_note),
        ("Held-out predictions", holdout_table(reports), holdout_note),
        ("Runs", runs, runs_note),
    ] + [
        (
            f"Challenge task: {task} ({TASK_METRIC})",
            task_table(points, TASK_METRIC),
            "Test users of each run; metrics under the run's protocol.",
        )
        for task, points in (tasks or {}).items()
    ]
    # HTML
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(summary)}</p>",
    ]
    if figures:
        parts.append("<h2>Plots</h2>")
    for f in figures:
        b64 = base64.b64encode(f.png).decode("ascii")
        parts.append(
            f"<h3>{html.escape(f.title)}</h3><figure><img alt='{html.escape(f.title)}'"
            f" src='data:image/png;base64,{b64}'><figcaption>{html.escape(f.caption)}"
            "</figcaption></figure>"
        )
    for heading, table, note in sections:
        if table.rows:
            parts.append(f"<h2>{heading}</h2><p class='meta'>{html.escape(note)}</p>{table.html()}")
    if reports:
        parts.append(
            "<h2>Laws</h2><ul>"
            + "".join(
                f"<li><b>{html.escape(r.name)}</b>: <code>{html.escape(r.fit.law.formula)}</code>"
                f" — least squares ({html.escape(r.fit.loss)} loss), {len(r.fit.boot_params)} "
                f"{html.escape(r.fit.bootstrap)} bootstrap refits. {html.escape(r.fit.law.notes)}"
                "</li>"
                for r in reports
            )
            + "</ul>"
        )
    if commands:
        parts.append(
            "<h2>Commands</h2><pre><code>" + html.escape("\n".join(commands)) + "</code></pre>"
        )
    parts.append("</body></html>")
    html_path = out / "report.html"
    html_path.write_text("".join(parts), encoding="utf-8")
    # Markdown
    md = [f"# {title}", "", summary, ""]
    if figures:
        md += ["## Plots", ""]
    for f in figures:
        md += [f"### {f.title}", "", f"![{f.title}]({f.slug}.png)", "", f"*{f.caption}*", ""]
    for heading, table, note in sections:
        if table.rows:
            md += [f"## {heading}", "", note, "", table.md(), ""]
    if reports:
        md += (
            ["## Laws", ""]
            + [f"- **{r.name}**: `{r.fit.law.formula}`. {r.fit.law.notes}" for r in reports]
            + [""]
        )
    if commands:
        md += ["## Commands", "", "```sh", *commands, "```", ""]
    md_path = out / "report.md"
    md_path.write_text("\n".join(md), encoding="utf-8")
    (out / "fits.json").write_text(json.dumps([r.to_dict() for r in reports], indent=1))
    return html_path, md_path
