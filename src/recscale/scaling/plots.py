"""Figures for the scaling report: fitted laws against measured runs, and the shared style.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
figure state; ``Figure.savefig`` renders with Agg). Create figures inside :func:`style` so
fonts are readable at the size the report shows them. Figures of the results table itself
(data scaling, backbones, tasks) live in :mod:`recscale.scaling.run_plots`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import matplotlib
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from recscale.scaling.fitting import FitResult
from recscale.scaling.holdout import HoldoutRow
from recscale.scaling.optimal import compute_optimal

STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9.5,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.framealpha": 0.9,
}
FIT_COLOR, HOLD_COLOR, PRED_COLOR = "#1f5fbf", "#d1495b", "#2a9d8f"

AXIS_LABELS = {
    "non_embedding_params": "non-embedding parameters N",
    "tokens": "training tokens D (item positions seen)",
    "compute": "training compute C (FLOPs)",
    "layers": "layers (blocks)",
    "dim": "embedding dim h",
}


@contextlib.contextmanager
def style() -> Iterator[None]:
    with matplotlib.rc_context(STYLE):
        yield


def metric_label(metric: str) -> str:
    if metric == "loss":
        return "test loss (full-softmax CE, nats)"
    if metric.startswith(("hr@", "ndcg@")):
        name, k = metric.split("@")
        return f"{name.upper()}@{k} (test, fraction)"
    if metric in ("auc", "gauc"):
        return f"{metric.upper()} (test)"
    if metric == "logloss":
        return "logloss (test)"
    return metric.upper() if metric == "mrr" else metric


def new_figure(ncols: int = 1, width: float = 7.2, height: float = 4.4) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols if ncols > 1 else width, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def tidy_log_axes(fig: Figure) -> Figure:
    """Readable log axes: SI labels at 1, 2, 5 x 10^k over short ranges and at powers of ten
    over long ones, never on minor ticks (matplotlib's defaults overlap on short ranges)."""
    ticker = matplotlib.ticker
    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale != "log":
                continue
            if getattr(axis.get_transform(), "base", 10) != 10:
                continue  # base-2 axes (layers) keep their own labels
            lo, hi = sorted(axis.get_view_interval())
            decades = np.log10(hi / lo) if lo > 0 else 99
            subs = (1.0, 2.0, 5.0) if decades <= 2 else (1.0,)
            axis.set_major_locator(ticker.LogLocator(base=10, subs=subs, numticks=8))
            axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: fmt_si(v)))
            axis.set_minor_formatter(ticker.NullFormatter())
    return fig


def palette(n: int) -> list:
    cmap = matplotlib.colormaps["viridis" if n > 4 else "tab10"]
    return [cmap(i / max(n - 1, 1) * 0.9) if n > 4 else cmap(i) for i in range(n)]


def fmt_si(v: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.3g}{unit}"
    return f"{v:.3g}"


def plot_one_input_law(
    fit: FitResult, holdout: Sequence[HoldoutRow] = (), *, title: str = ""
) -> Figure:
    """A law of one input (power_n, power_d, log_compute): points, curve, band, held-out runs."""
    fig, (ax,) = new_figure()
    x, y = fit.x[:, 0], fit.y
    held, held_x = _held_out(fit, holdout)
    lo_x = min([*x, *held_x]) / 1.6
    hi_x = max([*x, *held_x]) * 1.6
    grid = np.geomspace(lo_x, hi_x, 200)
    band = fit.predict(grid[:, None])
    pct = round(100 * fit.level)
    ax.fill_between(
        grid, band.lo, band.hi, color=FIT_COLOR, alpha=0.18, lw=0, label=f"{pct}% bootstrap band"
    )
    ax.plot(grid, band.value, color=FIT_COLOR, lw=2, label=f"fit ({fit.law.name}), R²={fit.r2:.3f}")
    ax.scatter(
        x,
        y,
        s=46,
        color=FIT_COLOR,
        edgecolor="white",
        zorder=3,
        label=f"measured, used in fit ({len(y)})",
    )
    _draw_holdout(ax, held, held_x)
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_LABELS.get(fit.law.inputs[0], fit.law.inputs[0]))
    ax.set_ylabel(metric_label(fit.metric))
    ax.set_title(title or f"{metric_label(fit.metric)} vs {fit.law.inputs[0]}")
    ax.legend(loc="best")
    return tidy_log_axes(fig)


def _held_out(fit: FitResult, holdout: Sequence[HoldoutRow]) -> tuple[list, list[float]]:
    """Held-out rows with a measurement, and their position on the law's input axis."""
    held = [h for h in holdout if np.isfinite(h.measured) and fit.law.inputs[0] in h.inputs]
    return held, [_holdout_input(fit, h) for h in held]


def _draw_holdout(ax, held: Sequence[HoldoutRow], held_x: Sequence[float]) -> None:
    """Predictions (diamonds with intervals) beside what the held-out runs measured."""
    if not held:
        return
    hx = np.array(held_x)
    pred = np.array([h.predicted for h in held])
    err = np.array([[h.predicted - h.lo for h in held], [h.hi - h.predicted for h in held]])
    ax.errorbar(
        hx,
        pred,
        yerr=np.maximum(err, 0),
        fmt="D",
        ms=7,
        color=PRED_COLOR,
        ecolor=PRED_COLOR,
        capsize=5,
        lw=1.5,
        zorder=4,
        label="predicted for held-out run (interval)",
    )
    ax.scatter(
        hx,
        [h.measured for h in held],
        s=80,
        marker="s",
        facecolor="none",
        edgecolor=HOLD_COLOR,
        lw=2,
        zorder=5,
        label="measured, held out",
    )
    for xi, h in zip(hx, held, strict=True):
        ax.annotate(
            f"{100 * h.rel_error:+.1f}%",
            (xi, max(h.measured, h.hi)),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=9,
            color=HOLD_COLOR,
        )


def _holdout_input(fit: FitResult, h: HoldoutRow) -> float:
    return float(h.inputs.get(fit.law.inputs[0], np.nan))


def plot_compute_law(
    results: pl.DataFrame, fit: FitResult, holdout: Sequence[HoldoutRow] = ()
) -> Figure:
    """A metric vs training compute with the log-linear law and its band, by backbone, and
    the held-out runs' predictions against what they measured."""
    fig, (ax,) = new_figure()
    held, held_x = _held_out(fit, holdout)
    xs = [*fit.x[:, 0], *held_x]
    grid = np.geomspace(min(xs) / 1.6, max(xs) * 1.6, 200)
    band = fit.predict(grid[:, None])
    ax.fill_between(
        grid,
        band.lo,
        band.hi,
        color=FIT_COLOR,
        alpha=0.18,
        lw=0,
        label=f"{round(100 * fit.level)}% bootstrap band",
    )
    q, p = fit.params["q"], fit.params["p"]
    ax.plot(
        grid,
        band.value,
        color=FIT_COLOR,
        lw=2,
        label=f"{p:.3g} {'+' if q >= 0 else '−'} {abs(q):.3g}·ln C  (R²={fit.r2:.3f})",
    )
    used = set(fit.runs)
    table = results.filter(pl.col(fit.metric).is_not_null())
    if used and "run" in table.columns:
        table = table.filter(pl.col("run").is_in(sorted(used)))
    groups = table["backbone"].unique().sort().to_list() if "backbone" in table.columns else [""]
    markers = "osD^vP*X"
    for i, bb in enumerate(groups):
        part = table.filter(pl.col("backbone") == bb) if bb else table
        ax.scatter(
            part["compute"],
            part[fit.metric],
            s=46,
            marker=markers[i % len(markers)],
            color=palette(max(len(groups), 1))[i],
            edgecolor="white",
            zorder=3,
            label=f"{bb} (measured, in fit)" if bb else "measured, in fit",
        )
    _draw_holdout(ax, held, held_x)
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_LABELS["compute"])
    ax.set_ylabel(metric_label(fit.metric))
    ax.set_title(f"{metric_label(fit.metric).split(' (')[0]} vs training compute")
    ax.legend(loc="best")
    return tidy_log_axes(fig)


def plot_performance_law(fit: FitResult, holdout: Sequence[HoldoutRow] = ()) -> Figure:
    """The fitted surface over (layers, dim) as a heat map with the measured runs, measured
    vs predicted, and the surface sliced along layers at each dim (the inverted U, when
    there is one). Held-out runs are diamonds: their prediction, with its interval, beside
    what they measured."""
    fig, (ax0, ax1, ax2) = new_figure(3, width=5.2, height=4.4)
    x = fit.x
    # rows of the largest data size (their tokens / ApEn fixed): the surface of one data set
    keep = (
        np.all(x[:, 2:] == x[np.argmax(x[:, 2]), 2:], axis=1)
        if x.shape[1] > 2
        else np.ones(len(x), bool)
    )
    held = [h for h in holdout if {"layers", "dim"} <= set(h.inputs)]
    all_layers = np.r_[x[keep, 0], [h.inputs["layers"] for h in held]]
    all_dims = np.r_[x[keep, 1], [h.inputs["dim"] for h in held]]
    grid_l = np.geomspace(all_layers.min(), all_layers.max(), 60)
    grid_d = np.geomspace(all_dims.min(), all_dims.max(), 60)
    gl, gd = np.meshgrid(grid_l, grid_d)
    base = np.tile(x[np.argmax(keep)], (gl.size, 1))
    base[:, 0], base[:, 1] = gl.ravel(), gd.ravel()
    surface = fit.law(base, fit.theta).reshape(gl.shape)
    mesh = ax0.pcolormesh(gl, gd, surface, shading="auto", cmap="viridis")
    fig.colorbar(mesh, ax=ax0, label=metric_label(fit.metric).split(" (")[0])
    ax0.scatter(
        x[keep, 0],
        x[keep, 1],
        c=fit.y[keep],
        cmap="viridis",
        edgecolor="white",
        s=60,
        vmin=surface.min(),
        vmax=surface.max(),
        label="runs in the fit",
    )
    if held:
        ax0.scatter(
            [h.inputs["layers"] for h in held],
            [h.inputs["dim"] for h in held],
            marker="D",
            facecolor="none",
            edgecolor=HOLD_COLOR,
            s=80,
            lw=1.8,
            label="held out",
        )
    best = np.unravel_index(np.argmax(surface), surface.shape)
    ax0.plot(gl[best], gd[best], "*", color="white", mec="black", ms=14, label="fitted best")
    ax0.set_xscale("log", base=2)
    ax0.set_yscale("log", base=2)
    ax0.set_xlabel(AXIS_LABELS["layers"])
    ax0.set_ylabel(AXIS_LABELS["dim"])
    ax0.set_title("Fitted surface and measured runs")
    ax0.legend(loc="lower left", fontsize=8)

    pred = fit.law(fit.x, fit.theta)
    points = np.r_[pred, fit.y, [h.predicted for h in held], [h.measured for h in held]]
    lo, hi = points.min(), points.max()
    pad = 0.05 * (hi - lo or 1.0)
    ax1.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "--", color="grey", lw=1, label="y = x")
    ax1.scatter(
        pred,
        fit.y,
        s=40,
        color=FIT_COLOR,
        edgecolor="white",
        zorder=3,
        label=f"runs (R²={fit.r2:.3f})",
    )
    for i, h in enumerate(held):
        ax1.errorbar(
            h.predicted,
            h.measured,
            xerr=[[h.predicted - h.lo], [h.hi - h.predicted]],
            fmt="D",
            color=HOLD_COLOR,
            ms=6,
            capsize=3,
            label="held out (pred. interval)" if i == 0 else None,
        )
    ax1.set_xlabel(f"predicted {metric_label(fit.metric).split(' (')[0]}")
    ax1.set_ylabel(f"measured {metric_label(fit.metric).split(' (')[0]}")
    ax1.set_title("Performance Law: measured vs predicted")
    ax1.legend(loc="upper left")

    dims = np.unique(all_dims)
    colors = palette(len(dims))
    layers = np.geomspace(all_layers.min(), all_layers.max(), 120)
    for dim, color in zip(dims, colors, strict=True):
        rows = keep & (x[:, 1] == dim)
        ax2.plot(x[rows, 0], fit.y[rows], "o", color=color, ms=6, mec="white")
        line = np.tile(x[np.argmax(keep)], (len(layers), 1))
        line[:, 0], line[:, 1] = layers, dim
        ax2.plot(layers, fit.law(line, fit.theta), "-", color=color, lw=1.6, label=f"h = {dim:g}")
        for h in held:
            if h.inputs["dim"] == dim:
                ax2.plot(h.inputs["layers"], h.measured, "D", color=color, mec="black", ms=7)
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel(AXIS_LABELS["layers"])
    ax2.set_ylabel(metric_label(fit.metric))
    ax2.set_title("Along layers per width (diamonds: held out)")
    ax2.legend(loc="best", title="embedding dim", ncols=2 if len(dims) > 4 else 1)
    return fig


def plot_frontier(fit: FitResult, budgets: np.ndarray) -> Figure:
    """Compute-optimal N and D under C = 6·N·D from the fitted joint law."""
    best = compute_optimal(fit, budgets)
    fig, (ax,) = new_figure()
    ax.plot(best.compute, best.params, "-", color=FIT_COLOR, lw=2, label="optimal N (params)")
    ax.plot(best.compute, best.tokens, "-", color=HOLD_COLOR, lw=2, label="optimal D (tokens)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS["compute"])
    ax.set_ylabel("count (parameters or tokens)")
    ax.set_title("Compute-optimal allocation under C = 6·N·D (joint law)")
    ax.legend(loc="upper left")
    return tidy_log_axes(fig)
