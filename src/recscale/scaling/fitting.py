"""Fit scaling laws: robust least squares with restarts, bootstrap intervals.

Pure functions of arrays and tables (no I/O). The entry points:

- :func:`fit_law` -> :class:`FitResult` (parameters, bootstrap CIs, R², residuals, ``predict``;
  ``to_dict``/``from_dict`` round-trip it through JSON)
- :func:`predict` (keyword inputs: ``predict(fit, params=1e8, tokens=2e9)``)

Holdout checks live in :mod:`recscale.scaling.holdout`, compute-optimal allocation in
:mod:`recscale.scaling.optimal`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.optimize import least_squares

from recscale.errors import RecscaleError
from recscale.scaling.laws import LAWS, Law, as_law

# Keyword aliases accepted by ``predict``: the short names a user types for table columns.
ALIASES = {
    "params": "non_embedding_params",
    "n": "non_embedding_params",
    "d": "tokens",
    "c": "compute",
    "h": "dim",
}


@dataclass(frozen=True)
class Prediction:
    """Point estimates and a bootstrap percentile interval, arrays of the same shape."""

    value: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    level: float
    kind: str  # "confidence" (the mean curve) or "prediction" (a new run: adds residual noise)


@dataclass
class FitResult:
    """A fitted law.

    ``x`` [n, k] and ``y`` [n] are the points used in the fit (``runs`` names them when the
    fit came from a table); ``boot_params`` [B, p] holds the bootstrap refits from which the
    percentile ``ci`` and prediction intervals come.
    """

    law: Law
    metric: str
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    r2: float
    residuals: np.ndarray
    x: np.ndarray
    y: np.ndarray
    runs: list[str]
    boot_params: np.ndarray
    level: float = 0.95
    loss: str = "linear"
    seed: int = 0
    n_boot_failed: int = 0
    bootstrap: str = "pairs"

    @property
    def theta(self) -> np.ndarray:
        return np.array([self.params[p] for p in self.law.params])

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean(self.residuals**2)))

    def predict(
        self,
        data: pl.DataFrame | np.ndarray | None = None,
        *,
        level: float | None = None,
        kind: str = "confidence",
        **columns: Any,
    ) -> Prediction:
        """Predict from a table, an array ``[m, k]`` or keyword columns (``params=1e8``)."""
        x = design(self.law, data, **columns)
        value = self.law(x, self.theta)
        level = self.level if level is None else level
        if len(self.boot_params) == 0:
            return Prediction(value, value.copy(), value.copy(), level, kind)
        boot = np.stack([self.law(x, t) for t in self.boot_params])  # [B, m]
        if kind == "prediction":
            n, p = len(self.y), len(self.law.params)
            inflate = np.sqrt(n / (n - p)) if n > p else 1.0
            centred = (self.residuals - self.residuals.mean()) * inflate
            rng = np.random.default_rng(self.seed + 1)
            boot = boot + rng.choice(centred, size=boot.shape)
        elif kind != "confidence":
            raise RecscaleError(f"interval kind {kind!r}; allowed: confidence, prediction")
        q = 100 * (1 - level) / 2
        lo, hi = np.nanpercentile(boot, [q, 100 - q], axis=0)
        return Prediction(value, np.minimum(lo, value), np.maximum(hi, value), level, kind)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able record (the law by registered name)."""
        return {
            "law": self.law.name,
            "formula": self.law.formula,
            "metric": self.metric,
            "params": self.params,
            "ci": {k: list(v) for k, v in self.ci.items()},
            "r2": self.r2,
            "residuals": self.residuals.tolist(),
            "x": self.x.tolist(),
            "y": self.y.tolist(),
            "runs": self.runs,
            "boot_params": self.boot_params.tolist(),
            "level": self.level,
            "loss": self.loss,
            "seed": self.seed,
            "n_boot_failed": self.n_boot_failed,
            "bootstrap": self.bootstrap,
        }

    def summary(self) -> dict[str, Any]:
        """The parts of :meth:`to_dict` a person reads (no arrays), plus the RMSE."""
        d = self.to_dict()
        readable = ("law", "formula", "metric", "params", "ci", "level", "r2")
        return {**{k: d[k] for k in readable}, "rmse": self.rmse, "fitted_runs": d["runs"]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        """Read :meth:`to_dict` back (``bootstrap`` defaults to "pairs" for older records)."""
        law = LAWS.get(d["law"])
        return cls(
            law=law,
            metric=d["metric"],
            params=dict(d["params"]),
            ci={k: (float(v[0]), float(v[1])) for k, v in d["ci"].items()},
            r2=d["r2"],
            residuals=np.asarray(d["residuals"], float),
            x=np.asarray(d["x"], float).reshape(-1, len(law.inputs)),
            y=np.asarray(d["y"], float),
            runs=list(d["runs"]),
            boot_params=np.asarray(d["boot_params"], float).reshape(-1, len(law.params)),
            level=d["level"],
            loss=d["loss"],
            seed=d["seed"],
            n_boot_failed=d["n_boot_failed"],
            bootstrap=d.get("bootstrap", "pairs"),
        )


def design(law: Law, data: pl.DataFrame | np.ndarray | None = None, **columns: Any) -> np.ndarray:
    """The law's design matrix ``[m, k]`` from a table, an array, or keyword columns."""
    if isinstance(data, pl.DataFrame):
        missing = [c for c in law.inputs if c not in data.columns]
        if missing:
            raise RecscaleError(
                f"law {law.name} needs column(s) {', '.join(missing)}; the table has "
                f"{', '.join(data.columns)}"
            )
        x = data.select([pl.col(c).cast(pl.Float64) for c in law.inputs]).to_numpy()
    elif data is not None:
        x = np.asarray(data, dtype=float)
        x = x.reshape(-1, 1) if x.ndim == 1 and len(law.inputs) == 1 else np.atleast_2d(x)
    else:
        cols = {
            ALIASES.get(k.lower(), k): np.atleast_1d(np.asarray(v, float))
            for k, v in columns.items()
        }
        missing = [c for c in law.inputs if c not in cols]
        if missing:
            raise RecscaleError(
                f"law {law.name} needs {', '.join(law.inputs)}; missing {', '.join(missing)}"
            )
        x = np.stack(np.broadcast_arrays(*[cols[c] for c in law.inputs]), axis=1)
    if x.shape[1] != len(law.inputs):
        raise RecscaleError(
            f"law {law.name} takes {len(law.inputs)} input column(s) ({', '.join(law.inputs)}), "
            f"got {x.shape[1]}"
        )
    if not np.all(np.isfinite(x)):
        raise RecscaleError(f"law {law.name}: inputs {', '.join(law.inputs)} contain null/NaN")
    return x


# ---- the fit ---------------------------------------------------------------------------------
def _residual_fn(law: Law, x: np.ndarray, y: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def fn(z: np.ndarray) -> np.ndarray:
        r = law(x, law.to_public(z)) - y
        return np.nan_to_num(r, nan=1e6, posinf=1e6, neginf=-1e6)

    return fn


def _solve(
    law: Law,
    x: np.ndarray,
    y: np.ndarray,
    starts: Sequence[np.ndarray],
    loss: str,
    f_scale: float,
    max_nfev: int = 1000,
) -> tuple[np.ndarray, float] | None:
    """Best (internal params, cost) over the starting points; None when every start fails."""
    lo, hi = law.internal_bounds()
    eps = 1e-9 * (1 + np.abs(np.where(np.isfinite(lo), lo, 0) + np.where(np.isfinite(hi), hi, 0)))
    fn = _residual_fn(law, x, y)
    best: tuple[np.ndarray, float] | None = None
    for z0 in starts:
        z0 = np.clip(z0, lo + eps, hi - eps)  # least_squares wants strictly feasible starts
        if not np.all(np.isfinite(fn(z0))):
            continue
        try:
            with np.errstate(all="ignore"):
                res = least_squares(
                    fn,
                    z0,
                    bounds=(lo, hi),
                    loss=loss,
                    f_scale=f_scale,
                    x_scale="jac",
                    max_nfev=max_nfev,
                    ftol=1e-10,
                    xtol=1e-10,
                    gtol=1e-10,
                )
        except (ValueError, np.linalg.LinAlgError):
            continue
        cost = float(np.sum(res.fun**2))
        if np.isfinite(cost) and (best is None or cost < best[1]):
            best = (res.x, cost)
    return best


def _jitter(law: Law, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    scale = np.array(
        [
            0.7 if p in law.log_params else 0.3 * (abs(v) + 0.05)
            for p, v in zip(law.params, z, strict=True)
        ]
    )
    return z + rng.normal(0.0, 1.0, len(z)) * scale


def _fit_points(
    law: Law,
    x: np.ndarray,
    y: np.ndarray,
    restarts: int,
    rng: np.random.Generator,
    loss: str,
    f_scale: float | None,
) -> tuple[np.ndarray, float]:
    heuristic = [law.to_internal(s) for s in law.starts(x, y)]
    starts = heuristic[: max(1, restarts)]
    while len(starts) < restarts:
        starts.append(_jitter(law, starts[len(starts) % max(1, len(heuristic))], rng))
    best = _solve(law, x, y, starts, "linear", 1.0)
    if best is None:
        raise RecscaleError(f"law {law.name}: no starting point gave a finite fit")
    if loss != "linear":
        if f_scale is None:  # robust residual scale of the plain fit
            r = _residual_fn(law, x, y)(best[0])
            f_scale = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 1e-12)
        robust = _solve(law, x, y, [best[0]], loss, f_scale)
        if robust is not None:
            best = (robust[0], float(np.sum(_residual_fn(law, x, y)(robust[0]) ** 2)))
    return best


def r_squared(y: np.ndarray, residuals: np.ndarray) -> float:
    """1 - SS_res / SS_tot (NaN for a constant ``y``)."""
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum(residuals**2)) / ss_tot if ss_tot > 0 else float("nan")


def fit_law(
    law: str | Law,
    data: pl.DataFrame | np.ndarray,
    y: np.ndarray | None = None,
    *,
    metric: str | None = None,
    restarts: int = 8,
    seed: int = 0,
    loss: str = "linear",
    f_scale: float | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    bootstrap: str = "auto",
    runs: Sequence[str] | None = None,
) -> FitResult:
    """Fit ``law`` to a results table (its ``law.inputs`` columns and ``metric``) or to arrays.

    ``restarts`` starting points: the law's heuristic starts (exponent grids with the linear
    part solved exactly), then jittered copies. ``loss`` is passed to
    ``scipy.optimize.least_squares`` ("soft_l1", "huber", ... for robustness; ``f_scale``
    defaults to the MAD of the plain fit's residuals). ``bootstrap`` "pairs" resamples points
    (refit each time; resamples with fewer distinct points than parameters are redrawn) and
    "residual" resamples residuals onto the fitted curve; "auto" (default) takes pairs when
    there are at least twice as many points as parameters, else residuals: with 4 runs and 3
    parameters most pair resamples interpolate exactly and the intervals say nothing. Rows
    with a null/NaN metric are dropped from a table.
    """
    law = as_law(law)
    metric = metric or law.default_metric
    if isinstance(data, pl.DataFrame):
        if metric not in data.columns:
            raise RecscaleError(f"metric {metric!r} is not a column of the results table")
        table = data.filter(pl.col(metric).is_not_null() & pl.col(metric).is_not_nan())
        x = design(law, table)
        yv = table[metric].cast(pl.Float64).to_numpy()
        names = [str(r) for r in table["run"]] if "run" in table.columns else []
    else:
        if y is None:
            raise RecscaleError("fit_law on arrays needs y")
        x, yv = design(law, data), np.asarray(y, dtype=float)
        names = list(runs) if runs is not None else []
    if bootstrap not in ("auto", "pairs", "residual"):
        raise RecscaleError(f"bootstrap {bootstrap!r}; allowed: auto, pairs, residual")
    n, p = len(yv), len(law.params)
    if bootstrap == "auto":
        bootstrap = "pairs" if n >= 2 * p else "residual"
    if len(np.unique(x, axis=0)) < p:
        raise RecscaleError(
            f"law {law.name} has {p} parameters and needs at least {p} runs with distinct "
            f"{', '.join(law.inputs)}; got {len(np.unique(x, axis=0))}"
        )
    rng = np.random.default_rng(seed)
    z, _ = _fit_points(law, x, yv, restarts, rng, loss, f_scale)
    theta = law.to_public(z)
    fitted = law(x, theta)
    resid = yv - fitted
    r2 = r_squared(yv, resid)

    boots, failed = [], 0
    inflate = np.sqrt(n / (n - p)) if n > p else 1.0
    for _ in range(n_boot):
        if bootstrap == "pairs":
            for _try in range(50):
                idx = rng.integers(0, n, n)
                if len(np.unique(x[idx], axis=0)) >= p:
                    break
            xb, yb = x[idx], yv[idx]
        else:
            xb, yb = x, fitted + rng.choice((resid - resid.mean()) * inflate, n)
        # refits start from the full-data optimum (plus one jitter): resamples are close to it
        sol = _solve(law, xb, yb, [z, _jitter(law, z, rng)], loss, f_scale or 1.0, 300)
        if sol is None:
            failed += 1
            continue
        boots.append(law.to_public(sol[0]))
    boot = np.array(boots).reshape(-1, p)
    q = 100 * (1 - level) / 2
    ci = {}
    for i, name in enumerate(law.params):
        if len(boot):
            lo, hi = np.percentile(boot[:, i], [q, 100 - q])
            ci[name] = (float(lo), float(hi))
        else:
            ci[name] = (float("nan"), float("nan"))
    return FitResult(
        law=law,
        metric=metric,
        params=dict(zip(law.params, map(float, theta), strict=True)),
        ci=ci,
        r2=r2,
        residuals=resid,
        x=x,
        y=yv,
        runs=names,
        boot_params=boot,
        level=level,
        loss=loss,
        seed=seed,
        n_boot_failed=failed,
        bootstrap=bootstrap,
    )


def predict(
    fit: FitResult, *, level: float | None = None, kind: str = "confidence", **columns: Any
) -> Prediction:
    """``predict(fit, params=1e8)``; keyword names are table columns or their aliases."""
    return fit.predict(level=level, kind=kind, **columns)
