"""Compute-optimal allocation from a fitted ``joint`` law (Hoffmann et al., App. D)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from recscale.errors import RecscaleError
from recscale.scaling.fitting import FitResult


@dataclass(frozen=True)
class ComputeOptimal:
    compute: np.ndarray
    params: np.ndarray
    tokens: np.ndarray
    loss: np.ndarray


def compute_optimal(
    fit: FitResult,
    compute_budget: float | Sequence[float] | np.ndarray,
    flops_per_param_token: float | Callable[[float], float] = 6.0,
) -> ComputeOptimal:
    """N and D minimising the fitted joint law L(N, D) at compute C.

    With a constant k (C = k·N·D) the closed form is N* = G·(C/k)^(b/(a+b)),
    G = (aA / (bB))^(1/(a+b)), D* = C/(k·N*) (Hoffmann et al., App. D). With a callable
    ``flops_per_token(N)`` (training FLOPs per token of a model with N non-embedding
    parameters) the minimum over ln N is found numerically with D = C / flops_per_token(N).
    """
    if fit.law.name != "joint":
        raise RecscaleError(f"compute_optimal needs a fitted 'joint' law, got {fit.law.name!r}")
    _e, big_a, a, big_b, b = fit.theta
    budgets = np.atleast_1d(np.asarray(compute_budget, dtype=float))
    if not callable(flops_per_param_token):
        k = float(flops_per_param_token)
        g = (a * big_a / (b * big_b)) ** (1 / (a + b))
        n = g * (budgets / k) ** (b / (a + b))
        d = budgets / (k * n)
    else:
        fpt = flops_per_param_token
        n, d = np.empty_like(budgets), np.empty_like(budgets)
        for i, c in enumerate(budgets):

            def loss_at(log_n: float, c: float = c) -> float:
                nn = np.exp(log_n)
                return float(fit.law(np.array([[nn, c / fpt(nn)]]), fit.theta)[0])

            grid = np.linspace(0.0, np.log(c), 400)
            j = int(np.argmin([loss_at(v) for v in grid]))
            lo, hi = grid[max(j - 1, 0)], grid[min(j + 1, len(grid) - 1)]
            res = minimize_scalar(
                loss_at, bounds=(lo, hi), method="bounded", options={"xatol": 1e-10}
            )
            n[i] = np.exp(res.x)
            d[i] = c / fpt(n[i])
    loss = fit.law(np.stack([n, d], axis=1), fit.theta)
    return ComputeOptimal(compute=budgets, params=n, tokens=d, loss=loss)


def compute_frontier(
    fit: FitResult,
    c_min: float,
    c_max: float,
    num: int = 50,
    flops_per_param_token: float | Callable[[float], float] = 6.0,
) -> ComputeOptimal:
    """The compute-optimal N, D and loss over log-spaced budgets from c_min to c_max FLOPs."""
    return compute_optimal(fit, np.geomspace(c_min, c_max, num), flops_per_param_token)
