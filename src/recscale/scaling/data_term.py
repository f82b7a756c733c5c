"""The Performance Law's data term across data sets, fitted without assuming its form.

The paper fits D per data set and compares it with tokens × ApEn' (REFERENCES §3.5). Fitted
per data set, D, w5 and b are not identifiable (only their sum is, see
``performance_law``'s note). Here the depth and width terms are shared by every data set and
each data set gets its own constant: ``y = w1·f(N; w3) + w2·f(h; w4) + c_g``. The constants
``c_g`` are what any data term (b + the D term) must reproduce; their relation to tokens and
ApEn is the paper's claim, tested without choosing ApEn'. Pure functions of arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from recscale.scaling.fitting import r_squared
from recscale.scaling.laws import _PL_EXPONENTS, PF1, _factor, _lstsq


@dataclass(frozen=True)
class DataTermFit:
    """Shared (w1, w2, w3, w4), one constant per group (``groups`` order), R² on all points."""

    w: dict[str, float]
    groups: tuple[str, ...]
    constants: np.ndarray
    r2: float
    residuals: np.ndarray


def fit_data_terms(
    layers: np.ndarray, dim: np.ndarray, y: np.ndarray, groups: np.ndarray
) -> DataTermFit:
    """Least squares over (w3, w4) with the linear part solved exactly at each point
    (variable projection): a grid of starts, then Nelder-Mead from the best."""
    n, h, y = (np.asarray(v, float) for v in (layers, dim, y))
    names, index = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    onehot = list(np.eye(len(names))[index].T)

    def columns(w: np.ndarray) -> list[np.ndarray]:
        return [_factor(w[0], n, PF1), _factor(w[1], h, PF1), *onehot]

    def sse(w: np.ndarray) -> float:
        return _lstsq(columns(w), y)[1]

    start = min(((a, b) for a in _PL_EXPONENTS for b in _PL_EXPONENTS), key=sse)
    w3, w4 = minimize(sse, np.array(start), method="Nelder-Mead").x
    design = columns(np.array([w3, w4]))
    coef, _ = _lstsq(design, y)
    residuals = y - np.stack(design, axis=1) @ coef
    return DataTermFit(
        w={"w1": float(coef[0]), "w2": float(coef[1]), "w3": float(w3), "w4": float(w4)},
        groups=tuple(names.tolist()),
        constants=coef[2:],
        r2=r_squared(y, residuals),
        residuals=residuals,
    )


def bootstrap_data_terms(
    layers: np.ndarray,
    dim: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_boot: int = 200,
    seed: int = 0,
) -> np.ndarray:
    """``[n_boot, G]`` constants refitted on runs resampled within each group (every group
    keeps its size, so every constant stays defined)."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups).astype(str)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    out = []
    for _ in range(n_boot):
        rows = np.concatenate([rng.choice(m, len(m), replace=True) for m in members])
        out.append(fit_data_terms(layers[rows], dim[rows], y[rows], groups[rows]).constants)
    return np.array(out)


def correlation_interval(
    constants: np.ndarray, boot: np.ndarray, x: np.ndarray, level: float = 0.95
) -> tuple[float, float, float]:
    """Pearson r of the constants with ``x`` (one value per group), and the interval of r
    over the bootstrap constants (the uncertainty of the fits, not of the choice of data
    sets: with a handful of data sets that second one is large)."""
    r = float(np.corrcoef(constants, x)[0, 1])
    rs = np.array([np.corrcoef(b, x)[0, 1] for b in boot])
    lo, hi = np.nanquantile(rs, [(1 - level) / 2, (1 + level) / 2])
    return r, float(lo), float(hi)
