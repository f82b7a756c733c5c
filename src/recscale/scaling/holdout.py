"""Holdout checks: fit a law without some runs, then predict those runs.

- :func:`select_holdout` names the held-out runs (``"largest:K"``, ``"smallest:K"`` or a list)
- :func:`holdout_check` -> :class:`Holdout` (the fit on the rest, one :class:`HoldoutRow` each)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl

from recscale.errors import RecscaleError
from recscale.scaling.fitting import FitResult, design, fit_law
from recscale.scaling.laws import Law, as_law


@dataclass(frozen=True)
class HoldoutRow:
    run: str
    predicted: float
    lo: float
    hi: float
    measured: float
    rel_error: float  # (predicted - measured) / |measured|
    inside: bool  # measured within [lo, hi]
    inputs: dict[str, float] = field(default_factory=dict)  # the law's inputs for this run

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HoldoutRow:
        return cls(**{**d, "inputs": dict(d.get("inputs", {}))})


@dataclass
class Holdout:
    fit: FitResult
    rows: list[HoldoutRow] = field(default_factory=list)


def select_holdout(
    table: pl.DataFrame, holdout: str | Sequence[str], by: str = "non_embedding_params"
) -> list[str]:
    """Run names for ``"largest:K"`` (the K largest by ``by``) or an explicit list (a list,
    or one string of comma-separated names, as a sweep file or the CLI gives it)."""
    if "run" not in table.columns:
        raise RecscaleError("the results table has no 'run' column to name held-out runs")
    known = [str(r) for r in table["run"]]
    if isinstance(holdout, str) and ":" not in holdout:
        holdout = [name.strip() for name in holdout.split(",") if name.strip()]
    if isinstance(holdout, str):
        kind, _, k = holdout.partition(":")
        if kind not in ("largest", "smallest") or not k.isdigit() or int(k) < 1:
            raise RecscaleError(
                f"holdout {holdout!r}; allowed: 'largest:K', 'smallest:K' or a list of run names"
            )
        if by not in table.columns:
            raise RecscaleError(f"holdout {holdout!r} ranks by column {by!r}, which is missing")
        order = table.sort(by, descending=kind == "largest", maintain_order=True)
        return [str(r) for r in order["run"].head(int(k))]
    unknown = [r for r in holdout if r not in known]
    if unknown:
        raise RecscaleError(f"held-out run(s) {', '.join(unknown)} are not in the results table")
    return list(holdout)


def holdout_check(
    law: str | Law,
    table: pl.DataFrame,
    holdout: str | Sequence[str] = "largest:2",
    *,
    metric: str | None = None,
    by: str | None = None,
    interval: str = "prediction",
    **fit_kwargs: Any,
) -> Holdout:
    """Fit on every run except the held-out ones, then predict those.

    ``by`` ranks runs for ``largest:K`` (default: non-embedding params when the table has
    them, else the law's first input). ``interval`` "prediction" (default) includes the
    residual noise a new run has; "confidence" is the mean-curve band only.
    """
    law = as_law(law)
    metric = metric or law.default_metric
    if by is None:
        by = "non_embedding_params" if "non_embedding_params" in table.columns else law.inputs[0]
    held = set(select_holdout(table, holdout, by))
    train = table.filter(~pl.col("run").cast(pl.Utf8).is_in(sorted(held)))
    test = table.filter(pl.col("run").cast(pl.Utf8).is_in(sorted(held)))
    fit = fit_law(law, train, metric=metric, **fit_kwargs)
    x_test = design(law, test)
    pred = fit.predict(x_test, kind=interval)
    rows = []
    for i, run in enumerate(test["run"]):
        measured = test[metric][i]
        m = float("nan") if measured is None else float(measured)
        v = float(pred.value[i])
        rows.append(
            HoldoutRow(
                run=str(run),
                predicted=v,
                lo=float(pred.lo[i]),
                hi=float(pred.hi[i]),
                measured=m,
                rel_error=(v - m) / abs(m) if m else float("nan"),
                inside=bool(pred.lo[i] <= m <= pred.hi[i]),
                inputs=dict(zip(law.inputs, map(float, x_test[i]), strict=True)),
            )
        )
    return Holdout(fit=fit, rows=rows)
