"""A sweep's outcome in a few lines: what ran, what the laws say, how well they predicted.

:class:`SweepSummary` is built once (:func:`build_summary`, or :func:`read_summary` from a
reported sweep directory) and shown three ways: at the top of the HTML report and of its
Markdown twin (:mod:`recscale.scaling.report`), and on the terminal at the end of
``recscale demo`` / ``recscale report`` (the CLI renders :meth:`SweepSummary.lines`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from recscale.scaling.holdout import HoldoutRow
from recscale.scaling.sections import LawReport, num_text


@dataclass(frozen=True)
class FitSummary:
    """One fitted law: its parameters with their bootstrap intervals, and its held-out runs."""

    name: str
    formula: str
    params: list[tuple[str, float, float, float]]  # (name, estimate, lo, hi)
    level: float
    r2: float
    points: int
    holdout: list[HoldoutRow] = field(default_factory=list)

    def params_text(self) -> str:
        return ", ".join(
            f"{p} = {num_text(v)} [{num_text(lo)}, {num_text(hi)}]" for p, v, lo, hi in self.params
        )


@dataclass(frozen=True)
class SweepSummary:
    runs: int
    finished: int
    failed: dict[str, str]
    fits: list[FitSummary]
    skipped: dict[str, str] = field(default_factory=dict)  # fit name -> why
    report: str | None = None
    warnings: list[tuple[str, int]] = field(default_factory=list)  # said once, (text, times)

    def headline(self) -> str:
        return f"{self.runs} runs: {self.finished} finished, {len(self.failed)} failed"

    def lines(self) -> list[str]:
        """The summary as plain lines (what the terminal prints and Markdown lists)."""
        out = [self.headline() + "."]
        out += [f"  failed: {run}: {error}" for run, error in self.failed.items()]
        for fit in self.fits:
            out.append(f"{fit.name}: {fit.formula}")
            out.append(
                f"  fitted on {fit.points} runs, R² = {num_text(fit.r2)}; "
                f"{round(100 * fit.level)}% intervals: {fit.params_text()}"
            )
            out += [f"  held out {holdout_text(h)}" for h in fit.holdout]
        out += [f"{name}: {why}" for name, why in self.skipped.items()]
        return out


def holdout_text(h: HoldoutRow) -> str:
    """``run: predicted 6.18 [6.12, 6.24], measured 6.166, error +0.23%, inside``."""
    where = "inside the interval" if h.inside else "OUTSIDE the interval"
    return (
        f"{h.run}: predicted {num_text(h.predicted)} [{num_text(h.lo)}, {num_text(h.hi)}], "
        f"measured {num_text(h.measured)}, error {num_text(h.rel_error, 'pct')}, {where}"
    )


def build_summary(
    results: pl.DataFrame,
    reports: Sequence[LawReport],
    *,
    failed: Mapping[str, str] | None = None,
    skipped: Mapping[str, str] | None = None,
    report: str | Path | None = None,
) -> SweepSummary:
    failed = dict(failed or {})
    fits = [
        FitSummary(
            name=r.name,
            formula=r.fit.law.formula,
            params=[(p, r.fit.params[p], *r.fit.ci[p]) for p in r.fit.law.params],
            level=r.fit.level,
            r2=r.fit.r2,
            points=len(r.fit.y),
            holdout=list(r.holdout),
        )
        for r in reports
    ]
    return SweepSummary(
        runs=results.height + len(failed),
        finished=results.height,
        failed=failed,
        fits=fits,
        skipped=dict(skipped or {}),
        report=None if report is None else str(report),
    )


def read_summary(sweep_dir: str | Path) -> SweepSummary:
    """The summary of a sweep whose report has been written (``recscale report``)."""
    sweep_dir = Path(sweep_dir)
    results = pl.read_parquet(sweep_dir / "results.parquet")
    fits_path = sweep_dir / "report" / "fits.json"
    reports = [LawReport.from_dict(d) for d in json.loads(fits_path.read_text())]
    return build_summary(
        results,
        reports,
        failed=_json(sweep_dir / "failures.json"),
        skipped=_json(sweep_dir / "report_notes.json"),
        report=sweep_dir / "report" / "report.html",
    )


def _json(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.is_file() else {}
