"""What the CLI's ``fit``, ``predict``, ``report`` and ``demo`` call: tables in, answers out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from recscale.data.quality import data_quality
from recscale.errors import RecscaleError
from recscale.scaling.fitting import FitResult, fit_law
from recscale.scaling.holdout import holdout_check
from recscale.scaling.laws import LAWS
from recscale.scaling.report import write_report
from recscale.scaling.sections import LawReport
from recscale.scaling.summary import SweepSummary, read_summary
from recscale.scaling.sweep import load_spec, read_results, run_sweep
from recscale.train.config import load_run_config
from recscale.train.data import prepare_data


def fit_summary(fit: FitResult) -> dict[str, Any]:
    """The parts of a fit a person reads (no bootstrap arrays): :meth:`FitResult.summary`."""
    return fit.summary()


def fit_results(
    results: str | Path,
    *,
    law: str,
    metric: str,
    holdout: str | None = None,
    n_boot: int = 200,
    seed: int = 0,
    where: Sequence[str] = (),
) -> dict[str, Any]:
    """Fit ``law`` to ``metric`` (on the rows matching every ``column=value`` of ``where``);
    with ``holdout``, score the predictions of the held-out runs."""
    table = select_rows(read_results(results), where)
    _require_column(table, metric)
    if holdout is None:
        return fit_summary(fit_law(LAWS.get(law), table, metric=metric, n_boot=n_boot, seed=seed))
    check = holdout_check(LAWS.get(law), table, holdout, metric=metric, n_boot=n_boot, seed=seed)
    rows = [row.to_dict() for row in check.rows]
    return {
        **fit_summary(check.fit),
        "holdout": rows,
        "max_abs_rel_error": max((abs(r["rel_error"]) for r in rows), default=None),
    }


def predict_point(
    results: str | Path,
    *,
    law: str,
    metric: str,
    point: dict[str, float],
    n_boot: int = 200,
    seed: int = 0,
    where: Sequence[str] = (),
) -> dict[str, Any]:
    """Fit on every run (matching ``where``), then predict ``metric`` at ``point`` with a
    prediction interval."""
    table = select_rows(read_results(results), where)
    _require_column(table, metric)
    the_law = LAWS.get(law)
    missing = [c for c in the_law.inputs if c not in point]
    if missing:
        raise RecscaleError(
            f"law {law} needs {', '.join(the_law.inputs)}; missing: {', '.join(missing)}"
        )
    fit = fit_law(the_law, table, metric=metric, n_boot=n_boot, seed=seed)
    pred = fit.predict(kind="prediction", **{k: [point[k]] for k in the_law.inputs})
    return {
        "law": law,
        "metric": metric,
        "at": point,
        "predicted": float(pred.value[0]),
        "interval": [float(pred.lo[0]), float(pred.hi[0])],
        "level": pred.level,
        "fit_r2": fit.r2,
        "fitted_runs": len(fit.runs),
    }


def sweep_tasks(
    sweep_dir: str | Path, table: pl.DataFrame, tasks: Sequence[str]
) -> dict[str, list[tuple[str, float, dict[str, dict]]]]:
    """Each finished run's challenge-task results (computed once, then read from
    ``runs/<run>/tasks/<task>.json``), ready for the report."""
    from recscale.eval.protocols import parse_protocol
    from recscale.eval.tasks import flatten_result, saved_result
    from recscale.train import load_run_config
    from recscale.train.runs import run_task

    out: dict[str, list[tuple[str, float, dict[str, dict]]]] = {}
    for task in tasks:
        points = []
        for run, params in table.select("run", "non_embedding_params").iter_rows():
            run_dir = Path(sweep_dir) / "runs" / run
            protocol = parse_protocol(load_run_config(run_dir / "config.yaml").eval.protocol)
            result = saved_result(run_dir, task, protocol.name) or run_task(run_dir, task)
            points.append((run, float(params), flatten_result(result["result"])))
        out[task] = points
    return out


def report_sweep(
    sweep_dir: str | Path,
    holdout: str | None = None,
    n_boot: int = 200,
    tasks: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """Fit the sweep's laws (held-out runs predicted, not fitted) and write its report,
    with a section per challenge task (the spec's ``tasks`` plus ``tasks``)."""
    sweep_dir = Path(sweep_dir)
    spec_path = sweep_dir / "spec.yaml"
    if not spec_path.is_file():
        raise RecscaleError(f"{sweep_dir} is not a sweep directory (no spec.yaml)")
    spec, _ = load_spec(spec_path)
    table = read_results(sweep_dir)
    holdout = holdout or spec.holdout
    fits: dict[str, LawReport] = {}
    notes: dict[str, str] = {}
    for entry in spec.laws:
        law_name, _, metric = entry.partition(":")
        law = LAWS.get(law_name)
        metric = metric or law.default_metric
        name = f"{law_name} on {metric}"
        if metric not in table.columns or any(c not in table.columns for c in law.inputs):
            notes[name] = "skipped: the results lack its columns"
            continue
        try:
            if holdout and _distinct(table, law.inputs) > len(law.params) + _holdout_count(holdout):
                fits[name] = LawReport.from_holdout(
                    name, holdout_check(law, table, holdout, metric=metric, n_boot=n_boot)
                )
            else:
                fits[name] = LawReport(name, fit_law(law, table, metric=metric, n_boot=n_boot))
        except RecscaleError as err:
            notes[name] = f"skipped: {err}"
    (sweep_dir / "report_notes.json").write_text(json.dumps(notes, indent=1))
    commands = (
        [(sweep_dir / "command.txt").read_text().strip()]
        if (sweep_dir / "command.txt").exists()
        else []
    )
    commands.append(f"recscale report {sweep_dir}")
    task_names = list(dict.fromkeys([*spec.tasks, *(tasks or [])]))
    failures = sweep_dir / "failures.json"
    return write_report(
        table,
        fits,
        sweep_dir / "report",
        title=f"recscale scaling report: {spec.name}",
        commands=commands,
        tasks=sweep_tasks(sweep_dir, table, task_names) if task_names else None,
        failed=json.loads(failures.read_text()) if failures.is_file() else {},
        skipped=notes,
        quality=sweep_quality(sweep_dir, table) if _uses_data_term(spec.laws) else (),
    )


def _uses_data_term(laws: Sequence[str]) -> bool:
    return any(entry.startswith("performance_law") for entry in laws)


def sweep_quality(sweep_dir: Path, table: pl.DataFrame) -> list[dict[str, Any]]:
    """Data quality of each distinct training set (data config, max length) of the sweep's
    finished runs, on every user's last max-length items."""
    rows, seen = [], set()
    for run in table["run"].to_list():
        cfg = load_run_config(sweep_dir / "runs" / run / "config.yaml")
        key = (cfg.data.model_dump_json(), cfg.seed, cfg.model.max_len)
        if key in seen:
            continue
        seen.add(key)
        _, split = prepare_data(cfg.data, cfg.seed)
        q = data_quality(split.train, m=2, r=0.2, last_k=cfg.model.max_len)
        tokens = int(np.minimum(split.train.lengths, cfg.model.max_len).sum())
        rows.append(
            {
                "dataset": cfg.data.label,
                "max_len": cfg.model.max_len,
                "tokens": tokens,
                **{k: q[k] for k in ("apen", "lz_entropy_rate", "shannon_entropy_bits")},
                "compression_ratio": q["compression_ratio"],
                "tokens_x_apen": tokens * q["apen"],
            }
        )
    return rows


def demo(spec: str | Path, out: str | Path) -> SweepSummary:
    """The main job: run a small sweep on real data, fit, predict the largest, report.
    Returns the summary the report opens with (its path and the sweep's warnings in it)."""
    result = run_sweep(spec, out_dir=out)
    if result.failed:
        raise RecscaleError(f"{len(result.failed)} demo runs failed: {result.failed}")
    report_sweep(out)
    return replace(read_summary(out), warnings=result.warnings)


def select_rows(table: pl.DataFrame, where: Sequence[str]) -> pl.DataFrame:
    """The rows where every ``column=value`` holds (numbers compared as numbers)."""
    for condition in where:
        column, sep, raw = condition.partition("=")
        column, raw = column.strip(), raw.strip()
        if not sep or not column:
            raise RecscaleError(f"--where {condition!r}: expected column=value, e.g. layers=2")
        _require_column(table, column)
        if table.schema[column].is_numeric():
            try:
                value: Any = float(raw)
            except ValueError:
                raise RecscaleError(
                    f"--where {condition!r}: column {column!r} is numeric, got {raw!r}"
                ) from None
        else:
            value = raw
        table = table.filter(pl.col(column) == value)
        if table.height == 0:
            raise RecscaleError(f"--where {condition!r}: no run matches")
    return table


def _require_column(table: pl.DataFrame, metric: str) -> None:
    if metric not in table.columns:
        raise RecscaleError(
            f"no column {metric!r} in the results; columns: {', '.join(table.columns)}"
        )


def _distinct(table: pl.DataFrame, columns: tuple[str, ...] | list[str]) -> int:
    return table.select(list(columns)).unique().height


def _holdout_count(holdout: str) -> int:
    kind, _, k = holdout.partition(":")
    return int(k) if kind in ("largest", "smallest") and k.isdigit() else len(holdout.split(","))
