"""The report's content, built once: fitted laws, tables, and the page that holds them.

:func:`build_page` turns the results table, the fitted laws (:class:`LawReport`) and the
rendered figures into a :class:`Page` of plain strings; :mod:`recscale.scaling.report` renders
that one page as HTML and as Markdown. Nothing here knows either format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from recscale.scaling.fitting import FitResult
from recscale.scaling.holdout import Holdout, HoldoutRow
from recscale.scaling.run_plots import natural_key
from recscale.train.record import COORDINATES

if TYPE_CHECKING:
    from recscale.scaling.summary import SweepSummary

# The runs table: each run's coordinates, the inputs laws are fitted against, headline metrics.
RUN_COLUMNS = (
    *COORDINATES,
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
RUN_HEADERS = {
    "non_embedding_params": "N (non-emb.)",
    "data_fraction": "data frac.",
    "tokens": "tokens D",
    "compute": "C (FLOPs)",
}
SI_COLUMNS = ("non_embedding_params", "tokens", "compute")

TaskPoints = Mapping[str, Sequence[tuple[str, float, dict[str, dict]]]]
"""Challenge-task results per task: ``(run, non-embedding params, {series: metrics})``."""
TASK_METRIC = "hr@10"


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


def as_reports(fits: Mapping[str, LawReport | FitResult | Holdout]) -> list[LawReport]:
    """``{key: LawReport | FitResult | Holdout}`` -> reports (bare fits titled by their key)."""
    out = []
    for key, v in fits.items():
        if isinstance(v, LawReport):
            out.append(v)
        elif isinstance(v, Holdout):
            out.append(LawReport.from_holdout(key, v))
        else:
            out.append(LawReport(name=key, fit=v))
    return out


# ---- the page model --------------------------------------------------------------------------
@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class TableSection:
    heading: str
    note: str
    table: Table


@dataclass(frozen=True)
class ReportFigure:
    """A rendered figure: ``slug`` names its PNG (``fig-01-power_n``)."""

    slug: str
    title: str
    caption: str
    png: bytes


@dataclass(frozen=True)
class LawEntry:
    """One line of the Laws section."""

    name: str
    formula: str
    loss: str
    refits: int
    bootstrap: str
    notes: str


@dataclass(frozen=True)
class Page:
    title: str
    summary: str
    figures: list[ReportFigure]
    tables: list[TableSection]  # only tables with rows
    laws: list[LawEntry]
    commands: list[str]
    overview: SweepSummary | None = None  # what the page opens with, above the plots


PARAMS_NOTE = (
    "Percentile intervals of bootstrap refits. Parameters a law cannot identify "
    "from these runs (see Laws) get wide, meaningless intervals."
)
HOLDOUT_NOTE = (
    "Each held-out run was left out of its fit; the interval is the bootstrap "
    "prediction interval (parameter uncertainty plus residual noise)."
)
TASK_NOTE = "Test users of each run; metrics under the run's protocol."


def build_page(
    results: pl.DataFrame,
    reports: Sequence[LawReport],
    figures: Sequence[ReportFigure],
    *,
    title: str,
    commands: Sequence[str] = (),
    tasks: TaskPoints | None = None,
    overview: SweepSummary | None = None,
    quality: Sequence[Mapping[str, Any]] = (),
) -> Page:
    """Every section of the report, once."""
    runs, constant = runs_table(results)
    sections = [
        TableSection("Fitted parameters", PARAMS_NOTE, params_table(reports)),
        TableSection("Held-out predictions", HOLDOUT_NOTE, holdout_table(reports)),
        TableSection("Runs", f"Same in every run: {constant}." if constant else "", runs),
    ] + [
        TableSection(
            f"Challenge task: {task} ({TASK_METRIC})", TASK_NOTE, task_table(points, TASK_METRIC)
        )
        for task, points in (tasks or {}).items()
    ]
    sections.append(TableSection("Data quality", QUALITY_NOTE, quality_table(quality)))
    laws = [
        LawEntry(
            name=r.name,
            formula=r.fit.law.formula,
            loss=r.fit.loss,
            refits=len(r.fit.boot_params),
            bootstrap=r.fit.bootstrap,
            notes=r.fit.law.notes,
        )
        for r in reports
    ]
    return Page(
        title=title,
        summary=summary_line(results),
        figures=list(figures),
        tables=[s for s in sections if s.table.rows],
        laws=laws,
        commands=list(commands),
        overview=overview,
    )


def summary_line(results: pl.DataFrame) -> str:
    """``"12 runs (11 finished, 1 failed); protocol: full"``."""
    summary = f"{results.height} runs"
    if "status" in results.columns and results["status"].n_unique() > 1:
        counts = results["status"].value_counts(sort=True).iter_rows()
        summary += " (" + ", ".join(f"{n} {status}" for status, n in counts) + ")"
    if "protocol" in results.columns:
        summary += "; protocol: " + ", ".join(map(str, results["protocol"].unique().sort()))
    return summary


# ---- formatting ------------------------------------------------------------------------------
def num_text(v: Any, kind: str = "g") -> str:
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


def _si(v: Any) -> str:
    if v is None:
        return "–"
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


# ---- tables ----------------------------------------------------------------------------------
def runs_table(results: pl.DataFrame) -> tuple[Table, str]:
    """The runs, one row each; columns equal in every run move to a one-line note."""
    cols = [c for c in RUN_COLUMNS if c in results.columns]
    constant = [c for c in cols if c != "run" and results.height > 1 and results[c].n_unique() == 1]
    note = ", ".join(f"{c} = {num_text(results[c][0])}" for c in constant)
    cols = [c for c in cols if c not in constant]
    sort = [c for c in ("backbone", "non_embedding_params", "data_fraction") if c in cols]
    table = results.sort(sort) if sort else results
    rows = [
        [_si(v) if c in SI_COLUMNS else num_text(v) for c, v in zip(cols, row, strict=True)]
        for row in table.select(cols).iter_rows()
    ]
    return Table([RUN_HEADERS.get(c, c) for c in cols], rows), note


def params_table(reports: Sequence[LawReport]) -> Table:
    rows = []
    for rep in reports:
        f = rep.fit
        for i, p in enumerate(f.law.params):
            lo, hi = f.ci[p]
            rows.append(
                [
                    rep.name if i == 0 else "",
                    f.law.name if i == 0 else "",
                    rep.metric if i == 0 else "",
                    p,
                    num_text(f.params[p]),
                    f"[{num_text(lo)}, {num_text(hi)}]",
                    num_text(f.r2) if i == 0 else "",
                    str(len(f.y)) if i == 0 else "",
                ]
            )
    pct = round(100 * reports[-1].fit.level) if reports else 95  # as the last fit states it
    header = ["fit", "law", "metric", "parameter", "estimate", f"{pct}% bootstrap CI", "R²"]
    return Table([*header, "points"], rows)


def holdout_table(reports: Sequence[LawReport]) -> Table:
    rows = [
        [
            rep.name,
            rep.metric,
            h.run,
            num_text(h.predicted),
            f"[{num_text(h.lo)}, {num_text(h.hi)}]",
            num_text(h.measured),
            num_text(h.rel_error, "pct"),
            num_text(h.inside),
        ]
        for rep in reports
        for h in rep.holdout
    ]
    header = ["fit", "metric", "held-out run", "predicted", "interval", "measured", "rel. error"]
    return Table([*header, "inside"], rows)


def task_table(points: Sequence[tuple[str, float, dict[str, dict]]], metric: str) -> Table:
    """One row per group or rate, one column per run (smallest model first)."""
    runs = sorted(points, key=lambda p: p[1])
    labels = sorted({label for _, _, series in runs for label in series}, key=natural_key)
    header = ["group"] + [f"{name} (N={_si(n)})" for name, n, _ in runs]
    rows = [
        [label] + [num_text(series.get(label, {}).get(metric)) for _, _, series in runs]
        for label in labels
    ]
    return Table(header, rows)


QUALITY_NOTE = (
    "Each training set of the sweep (one row per dataset and max length), measured on every "
    "user's last max-length items: ApEn (m = 2, r = 0.2), the LZ entropy rate, the item "
    "popularity entropy and the compression ratio; tokens × ApEn is the Performance Law's "
    "data term before its transform."
)
QUALITY_COLUMNS = (
    ("dataset", "data"),
    ("max_len", "max len"),
    ("tokens", "training tokens"),
    ("apen", "ApEn"),
    ("lz_entropy_rate", "LZ entropy rate"),
    ("shannon_entropy_bits", "Shannon (bits)"),
    ("compression_ratio", "compression"),
    ("tokens_x_apen", "tokens × ApEn"),
)


def quality_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    """One row per training set: its data-quality measures (``QUALITY_COLUMNS``)."""
    header = [title for _, title in QUALITY_COLUMNS]
    body = [
        [
            str(row[key]) if key in ("dataset", "max_len") else num_text(row.get(key))
            for key, _ in QUALITY_COLUMNS
        ]
        for row in rows
    ]
    return Table(header, body)
