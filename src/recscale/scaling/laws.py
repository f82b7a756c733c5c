"""Scaling-law forms: formula, input columns, parameters, model function, starting points.

Pure functions of arrays, no I/O. Each :class:`Law` maps a design matrix ``x: [n, k]`` (the
columns named in ``inputs``, in that order) and a parameter vector ``theta: [p]`` (in
``params`` order) to predictions ``[n]``. Fitting lives in :mod:`recscale.scaling.fitting`.

Forms (DESIGN "Scaling-law forms"; REFERENCES §1.3, §3.5, §4.7):

- ``power_n``      L(N) = E + (N0/N)^a                 Kaplan; LSRM (Zhang et al.)
- ``power_d``      L(D) = E + (D0/D)^b
- ``joint``        L(N, D) = E + A/N^a + B/D^b         Chinchilla
- ``log_compute``  metric(C) = p + q·ln C               HSTU Fig. 7 (C in FLOPs here)
- ``performance_law``       Shen et al., exactly as ``performance_law_fitting.py``
- ``performance_law_data``  the same with D = kappa · D'(tokens, ApEn) given per run
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from recscale.registry import Registry

Model = Callable[[np.ndarray, np.ndarray], np.ndarray]
Starts = Callable[[np.ndarray, np.ndarray], list[np.ndarray]]


@dataclass(frozen=True)
class Law:
    """One functional form.

    ``log_params`` are fitted as ln(value): they stay positive and a scale such as N0 = 6.8e5
    becomes an O(10) number, which keeps the Jacobian well conditioned. ``lower``/``upper``
    bound the other parameters (public values). ``starts(x, y)`` returns starting points
    (public values), best first; the fitter adds jittered copies. ``plot`` names the report's
    figure for it, a kind registered in :mod:`recscale.scaling.figures`.
    """

    name: str
    formula: str
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    model: Model
    starts: Starts
    plot: str
    log_params: frozenset[str] = frozenset()
    lower: dict[str, float] = field(default_factory=dict)
    upper: dict[str, float] = field(default_factory=dict)
    default_metric: str = "loss"
    notes: str = ""

    def __call__(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            return self.model(np.atleast_2d(np.asarray(x, dtype=float)), np.asarray(theta, float))

    # -- internal (fitting) parameterisation -------------------------------------------------
    def to_internal(self, theta: np.ndarray) -> np.ndarray:
        z = np.array(theta, dtype=float)
        for i, p in enumerate(self.params):
            if p in self.log_params:
                z[i] = np.log(max(z[i], 1e-300))
        return z

    def to_public(self, z: np.ndarray) -> np.ndarray:
        theta = np.array(z, dtype=float)
        for i, p in enumerate(self.params):
            if p in self.log_params:
                theta[i] = np.exp(min(theta[i], 700.0))
        return theta

    def internal_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = [], []
        for p in self.params:
            if p in self.log_params:
                lo.append(np.log(self.lower[p]) if p in self.lower else -700.0)
                hi.append(np.log(self.upper[p]) if p in self.upper else 700.0)
            else:
                lo.append(self.lower.get(p, -np.inf))
                hi.append(self.upper.get(p, np.inf))
        return np.array(lo), np.array(hi)


LAWS: Registry[Law] = Registry("scaling law")


def as_law(law: str | Law) -> Law:
    """A law by registered name (a :class:`Law` passes through)."""
    return law if isinstance(law, Law) else LAWS.get(law)


def law_names() -> list[str]:
    """Every registered law, sorted: the choices for ``--law`` and ``laws:`` in a sweep spec."""
    return LAWS.names()


def law_help() -> str:
    """A help text listing the laws from the registry, e.g. for ``recscale fit --law``."""
    return "Scaling law: " + ", ".join(law_names())


def _lstsq(columns: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares for the linear part of a law once its exponents are fixed."""
    a = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    return coef, float(np.sum((a @ coef - y) ** 2))


# ---- power laws in one variable ------------------------------------------------------------
_EXPONENT_GRID = (0.05, 0.1, 0.2, 0.35, 0.5, 0.8, 1.2)


def _power_model(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    e, scale, a = theta
    return e + np.exp(a * (np.log(scale) - np.log(x[:, 0])))


def _power_starts(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    v = x[:, 0]
    ref = float(np.median(v))
    scored = []
    for a in _EXPONENT_GRID:
        (e, c), sse = _lstsq([np.ones_like(v), (v / ref) ** -a], y)
        # c·(v/ref)^-a = (S/v)^a with ln S = ln ref + ln(c)/a
        log_s = float(np.log(ref) + np.log(c) / a) if c > 0 else float(np.log(ref) - 2.0)
        scored.append((sse, np.array([max(e, 0.0), np.exp(min(log_s, 700.0)), a])))
    scored.sort(key=lambda t: t[0])
    return [s for _, s in scored]


LAWS.register("power_n")(
    Law(
        name="power_n",
        formula="L(N) = E + (N0 / N)^a,  N = non-embedding parameters",
        inputs=("non_embedding_params",),
        params=("E", "N0", "a"),
        model=_power_model,
        starts=_power_starts,
        plot="vs_params",
        log_params=frozenset({"N0"}),
        lower={"E": 0.0, "a": 1e-4},
        upper={"a": 5.0},
        notes="Kaplan et al.; Zhang et al. (LSRM) fit E=4.9, N0=6.8e5, a=0.121 on ML-20M.",
    )
)


def _metric_power_model(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    c, a = theta
    return c * np.exp(a * np.log(x[:, 0]))


def _metric_power_starts(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    (log_c, a), _ = _lstsq([np.ones(len(y)), np.log(x[:, 0])], np.log(np.maximum(y, 1e-12)))
    return [np.array([np.exp(log_c), a]), np.array([float(np.mean(y)), 0.0])]


LAWS.register("power_metric")(
    Law(
        name="power_metric",
        formula="metric(N) = c · N^a,  N = non-embedding parameters",
        inputs=("non_embedding_params",),
        params=("c", "a"),
        model=_metric_power_model,
        starts=_metric_power_starts,
        plot="vs_params",
        notes="The plain power law in model size that the Performance Law paper sets its "
        "law against (its 'scaling law' R²); a may have either sign, so it fits HR and NDCG.",
    )
)

LAWS.register("power_d")(
    Law(
        name="power_d",
        formula="L(D) = E + (D0 / D)^b,  D = training tokens",
        inputs=("tokens",),
        params=("E", "D0", "b"),
        model=_power_model,
        starts=_power_starts,
        plot="vs_data",
        log_params=frozenset({"D0"}),
        lower={"E": 0.0, "b": 1e-4},
        upper={"b": 5.0},
    )
)


# ---- joint (Chinchilla) ----------------------------------------------------------------------
def _joint_model(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    e, big_a, a, big_b, b = theta
    n, d = x[:, 0], x[:, 1]
    return e + np.exp(np.log(big_a) - a * np.log(n)) + np.exp(np.log(big_b) - b * np.log(d))


def _joint_starts(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    n, d = x[:, 0], x[:, 1]
    rn, rd = float(np.median(n)), float(np.median(d))
    scored = []
    for a in (0.1, 0.25, 0.5, 0.8):
        for b in (0.1, 0.25, 0.5, 0.8):
            (e, ca, cb), sse = _lstsq([np.ones_like(n), (n / rn) ** -a, (d / rd) ** -b], y)
            # ca·(n/rn)^-a = A·n^-a with A = ca·rn^a; non-positive coefficients start small
            big_a = np.exp(np.log(max(ca, 1e-3 * abs(e) + 1e-12)) + a * np.log(rn))
            big_b = np.exp(np.log(max(cb, 1e-3 * abs(e) + 1e-12)) + b * np.log(rd))
            scored.append((sse, np.array([max(e, 0.0), big_a, a, big_b, b])))
    scored.sort(key=lambda t: t[0])
    return [s for _, s in scored]


LAWS.register("joint")(
    Law(
        name="joint",
        formula="L(N, D) = E + A / N^a + B / D^b",
        inputs=("non_embedding_params", "tokens"),
        params=("E", "A", "a", "B", "b"),
        model=_joint_model,
        starts=_joint_starts,
        plot="frontier",
        log_params=frozenset({"A", "B"}),
        lower={"E": 0.0, "a": 1e-4, "b": 1e-4},
        upper={"a": 5.0, "b": 5.0},
        notes="Hoffmann et al. (Chinchilla); needs runs that vary both N and D.",
    )
)


# ---- log-linear compute law (HSTU) -----------------------------------------------------------
def _log_compute_model(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    p, q = theta
    return p + q * np.log(x[:, 0])


def _log_compute_starts(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    coef, _ = _lstsq([np.ones(len(y)), np.log(x[:, 0])], y)
    return [coef]


LAWS.register("log_compute")(
    Law(
        name="log_compute",
        formula="metric(C) = p + q · ln C,  C = training compute in FLOPs",
        inputs=("compute",),
        params=("p", "q"),
        model=_log_compute_model,
        starts=_log_compute_starts,
        plot="vs_compute",
        default_metric="hr@10",
        notes="HSTU Fig. 7 uses C in PetaFLOP/s-days; only p changes with the unit "
        "(p_pfd = p + q·ln 8.64e19).",
    )
)


# ---- Performance Law (Shen et al.) -----------------------------------------------------------
PF1 = 2.0  # performance_law_fitting.py: pf1 = pf2 = 2 (REFERENCES §3.5)
PF2 = 2.0


def _factor(w: np.ndarray | float, v: np.ndarray, pf: float) -> np.ndarray:
    """One factor of the official ``model_func``: -1/(pf·v^w) - w·ln v."""
    return -1.0 / (pf * v**w) - w * np.log(v)


def _performance_model(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
    w1, w2, data, b, w3, w4, w5 = theta
    n, h = x[:, 0], x[:, 1]
    return w1 * _factor(w3, n, PF1) + w2 * _factor(w4, h, PF1) + _factor(w5, data, PF2) + b


_PL_EXPONENTS = (-0.5, -0.25, -0.1, 0.1, 0.25, 0.5, 1.0)


def _performance_linear_starts(
    n: np.ndarray, h: np.ndarray, y_left: np.ndarray
) -> list[tuple[float, float, float, float, float, float]]:
    """Grid over (w3, w4); w1, w2, b by least squares. Returns (sse, w1, w2, b, w3, w4)."""
    out = []
    for w3 in _PL_EXPONENTS:
        for w4 in _PL_EXPONENTS:
            (w1, w2, b), sse = _lstsq(
                [_factor(w3, n, PF1), _factor(w4, h, PF1), np.ones_like(n)], y_left
            )
            out.append((sse, w1, w2, b, w3, w4))
    out.sort(key=lambda t: t[0])
    return out


def _performance_starts(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    # The official initial guess (all ones) first; then a grid with D = 1, w5 = 1, whose data
    # term -1/2 is a constant that b absorbs.
    starts = [np.ones(7)]
    for _, w1, w2, b, w3, w4 in _performance_linear_starts(x[:, 0], x[:, 1], y + 0.5):
        starts.append(np.array([w1, w2, 1.0, b, w3, w4, 1.0]))
    return starts


LAWS.register("performance_law")(
    Law(
        name="performance_law",
        formula=(
            "y = w1(-1/(2N^w3) - w3 ln N) + w2(-1/(2h^w4) - w4 ln h) "
            "+ (-1/(2D^w5) - w5 ln D) + b,  N = layers, h = embedding dim, D fitted"
        ),
        inputs=("layers", "dim"),
        params=("w1", "w2", "D", "b", "w3", "w4", "w5"),
        model=_performance_model,
        starts=_performance_starts,
        plot="surface",
        log_params=frozenset({"D"}),
        default_metric="hr@10",
        notes=(
            "Shen et al., exactly as performance_law_fitting.py (pf1 = pf2 = 2, D >= 0). Fit it "
            "to runs that share one data set and max length, as the paper does per panel: "
            "there the data term is one constant, so D, w5 and b are not identifiable "
            "separately (only b + data term is); w1..w4 and the predictions are."
        ),
    )
)


APEN_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "inverse": lambda apen: 1.0 / apen,
    "identity": lambda apen: apen,
    "none": lambda apen: np.ones_like(apen),
}
TOKEN_UNIT = 1e6


def effective_data(
    tokens: np.ndarray, apen: np.ndarray, transform: str = "inverse", unit: float = TOKEN_UNIT
) -> np.ndarray:
    """D' = (tokens / unit) · ApEn'(ApEn).

    The paper writes D' = #tokens × ApEn' without giving the transform ApEn' (REFERENCES §3.5;
    the repo's page speaks of "tokens / ApEn", and the paper reports ApEn rising with the
    duplication rate). The default is therefore ApEn' = 1/ApEn: more repetitive data counts as
    less data. ``identity`` and ``none`` (D' = tokens) are the alternatives. Tokens are counted
    in millions so D' lands near the O(1-100) D values the paper fits.
    """
    fn = APEN_TRANSFORMS[transform]
    return np.asarray(tokens, float) / unit * fn(np.asarray(apen, float))


def performance_law_data(transform: str = "inverse", name: str | None = None) -> Law:
    """The Performance Law with D = kappa · D'(tokens, ApEn) given per run.

    One common scale kappa is fitted (the units of D' are arbitrary, and the paper compares
    fitted D with tokens × ApEn' only up to such a scale); the rest is the official form.
    Needs runs at three or more distinct D' values to pin w5 and kappa.
    """

    def model(x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        w1, w2, b, w3, w4, w5, kappa = theta
        n, h = x[:, 0], x[:, 1]
        data = kappa * effective_data(x[:, 2], x[:, 3], transform)
        return w1 * _factor(w3, n, PF1) + w2 * _factor(w4, h, PF1) + _factor(w5, data, PF2) + b

    def starts(x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        d_prime = effective_data(x[:, 2], x[:, 3], transform)
        scored = []
        for w5 in (0.1, 0.5, 1.0):
            for k in (0.1, 1.0, 10.0):
                kappa = k / float(np.median(d_prime))
                left = y - _factor(w5, kappa * d_prime, PF2)
                best = _performance_linear_starts(x[:, 0], x[:, 1], left)[0]
                sse, w1, w2, b, w3, w4 = best
                scored.append((sse, np.array([w1, w2, b, w3, w4, w5, kappa])))
        scored.sort(key=lambda t: t[0])
        return [s for _, s in scored]

    return Law(
        name=name
        or (
            "performance_law_data"
            if transform == "inverse"
            else f"performance_law_data_{transform}"
        ),
        formula=(
            "y = w1(-1/(2N^w3) - w3 ln N) + w2(-1/(2h^w4) - w4 ln h) "
            "+ (-1/(2D^w5) - w5 ln D) + b,  D = kappa · train interactions/1e6 · ApEn'"
            f"  (ApEn' = {'1/ApEn' if transform == 'inverse' else transform})"
        ),
        # The data set's size, not the tokens a run happened to see (those grow with epochs).
        inputs=("layers", "dim", "train_interactions", "apen"),
        params=("w1", "w2", "b", "w3", "w4", "w5", "kappa"),
        model=model,
        starts=starts,
        plot="surface",
        log_params=frozenset({"kappa"}),
        default_metric="hr@10",
        notes=(
            "D' = tokens/1e6 × ApEn'; the paper does not give ApEn' (REFERENCES §3.5). "
            f"Here ApEn' = {transform} (see effective_data); kappa is one fitted scale."
        ),
    )


for _t in APEN_TRANSFORMS:
    _law = performance_law_data(_t)
    LAWS.register(_law.name)(_law)
