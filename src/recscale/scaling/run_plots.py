"""Figures of the results table: data scaling, backbones side by side, challenge tasks.

Built like :mod:`recscale.scaling.plots` (no pyplot; create them inside ``plots.style()``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import matplotlib
import numpy as np
import polars as pl
from matplotlib.figure import Figure

from recscale.scaling.fitting import FitResult
from recscale.scaling.plots import (
    AXIS_LABELS,
    fmt_si,
    metric_label,
    new_figure,
    palette,
    tidy_log_axes,
)

OF_PARAMS_AND_TOKENS = ("non_embedding_params", "tokens")
OF_TOKENS = ("tokens",)


def plot_data_scaling(
    results: pl.DataFrame, fits: Sequence[FitResult] = (), metric: str = "loss"
) -> Figure:
    """Loss vs training tokens, one colour per model size trained at several data sizes.

    Sizes measured at one data size only are grey dots. Of ``fits``, the first law of (N, D)
    (joint) is drawn at each coloured size, a law of D alone (power_d) as one dashed curve;
    the others are not drawn.
    """
    fig, (ax,) = new_figure(width=8.2)
    table = results.filter(pl.col(metric).is_not_null()).sort("tokens")
    counts = table.group_by("non_embedding_params").agg(pl.col("tokens").n_unique().alias("k"))
    sizes = sorted(counts.filter(pl.col("k") > 1)["non_embedding_params"].to_list())
    if len(sizes) > 8:  # keep the legend readable: eight sizes spread over the range
        sizes = [sizes[i] for i in np.linspace(0, len(sizes) - 1, 8).round().astype(int)]
    others = table.filter(~pl.col("non_embedding_params").is_in(sizes))
    if others.height:
        ax.scatter(
            others["tokens"],
            others[metric],
            s=18,
            color="#9aa3ad",
            zorder=2,
            label=f"other sizes ({others.height} runs)",
        )
    grid = np.geomspace(table["tokens"].min() / 1.5, table["tokens"].max() * 1.5, 200)
    joint = next((f for f in fits if f.law.inputs == OF_PARAMS_AND_TOKENS), None)
    for size, color in zip(sizes, palette(len(sizes)), strict=True):
        part = table.filter(pl.col("non_embedding_params") == size)
        ax.plot(
            part["tokens"],
            part[metric],
            "o",
            color=color,
            ms=7,
            mec="white",
            zorder=3,
            label=f"N = {fmt_si(size)}",
        )
        if joint is not None:
            ax.plot(
                grid,
                joint.predict(np.stack([np.full_like(grid, size), grid], 1)).value,
                "-",
                color=color,
                lw=1.5,
                alpha=0.9,
            )
    for f in fits:
        if f.law.inputs == OF_TOKENS:
            band = f.predict(grid[:, None])
            ax.fill_between(grid, band.lo, band.hi, color="grey", alpha=0.2, lw=0)
            label = f"{f.law.name} fit, R²={f.r2:.3f}"
            ax.plot(grid, band.value, "--", color="black", lw=1.5, label=label)
    if joint is not None:
        label = f"{joint.law.name} L(N, D) fit\nR²={joint.r2:.3f}"
        ax.plot([], [], "-", color="grey", label=label)
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_LABELS["tokens"])
    ax.set_ylabel(metric_label(metric))
    ax.set_title("Data scaling: loss vs training tokens")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), title="model size (measured)")
    return tidy_log_axes(fig)


def plot_cross_backbone(results: pl.DataFrame, metrics: Sequence[str]) -> Figure:
    """Each metric vs layers, one line per backbone (mean over seeds at the full data size).

    A backbone swept over several widths is drawn at the width with the longest layer ladder
    (ties: the wider), so each line changes depth only.
    """
    metrics = [m for m in metrics if m in results.columns]
    fig, axes = new_figure(len(metrics), width=4.0, height=3.9)
    table = results
    if "data_fraction" in table.columns and table["data_fraction"].n_unique() > 1:
        table = table.filter(pl.col("data_fraction") == table["data_fraction"].max())
    backbones = table["backbone"].unique().sort().to_list()
    ladders = {}
    for bb in backbones:
        part = table.filter(pl.col("backbone") == bb)
        if "dim" in part.columns:
            widths = part.group_by("dim").agg(pl.col("layers").n_unique().alias("k"))
            dim = widths.sort(["k", "dim"], descending=True)["dim"][0]
            ladders[bb] = (part.filter(pl.col("dim") == dim), f"{bb} (h = {dim})")
        else:
            ladders[bb] = (part, bb)
    colors = palette(len(backbones))
    markers = "osD^vP*X"
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (bb, color) in enumerate(zip(backbones, colors, strict=True)):
            part, label = ladders[bb]
            agg = (
                part.filter(pl.col(metric).is_not_null())
                .group_by("layers")
                .agg(pl.col(metric).mean())
                .sort("layers")
            )
            ax.plot(
                agg["layers"],
                agg[metric],
                marker=markers[i % len(markers)],
                color=color,
                lw=1.8,
                ms=6,
                label=label,
            )
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel(AXIS_LABELS["layers"])
        ax.set_ylabel(metric_label(metric))
        ax.set_title(f"{metric_label(metric).split(' (')[0]} by backbone")
        ax.legend(loc="best", title="backbone")
    return tidy_log_axes(fig)


def plot_ranking_variants(results: pl.DataFrame, metric: str = "auc") -> Figure:
    """Ranking ``metric`` against the negative-sampling ratio (one line per backbone) and per
    scoring network (one marker per backbone), over the runs that vary them."""
    fig, axes = new_figure(2, width=4.4, height=3.9)
    backbones = results["backbone"].unique().sort().to_list()
    colors = palette(len(backbones))
    scorers = results["scorer"].unique().sort().to_list()
    for i, (bb, color) in enumerate(zip(backbones, colors, strict=True)):
        part = results.filter(pl.col("backbone") == bb)
        # each panel holds the other switch at its most common value
        common_scorer = part["scorer"].mode().sort()[0]
        ratios = (
            part.filter(pl.col("scorer") == common_scorer)
            .group_by("negative_ratio")
            .agg(pl.col(metric).mean())
            .sort("negative_ratio")
        )
        axes[0].plot(ratios["negative_ratio"], ratios[metric], marker="o", color=color, label=bb)
        common_ratio = part["negative_ratio"].mode().sort()[-1]
        by_scorer = (
            part.filter(pl.col("negative_ratio") == common_ratio)
            .group_by("scorer")
            .agg(pl.col(metric).mean())
        )
        xs = [scorers.index(s) + 0.08 * (i - len(backbones) / 2) for s in by_scorer["scorer"]]
        axes[1].plot(xs, by_scorer[metric], "o", color=color, ms=7, label=bb)
    axes[0].set_xlabel("negative-sampling ratio (negatives per positive)")
    axes[0].set_title(f"{metric_label(metric)} by negative ratio")
    axes[1].set_xticks(range(len(scorers)), scorers)
    axes[1].set_xlabel("scoring network")
    axes[1].set_title(f"{metric_label(metric)} by scoring network")
    for ax in axes:
        ax.set_ylabel(metric_label(metric))
        ax.legend(loc="best", title="model", fontsize=8.5)
    return fig


def plot_by_size(results: pl.DataFrame, group: str, metrics: Sequence[str]) -> Figure:
    """Each metric against non-embedding parameters, one line per value of column ``group``
    (mean over seeds), so two ways of building items compare size for size."""
    metrics = [m for m in metrics if m in results.columns and results[m].is_not_null().any()]
    fig, axes = new_figure(len(metrics), width=4.2, height=3.9)
    labels = results[group].unique().sort().to_list()
    for ax, metric in zip(axes, metrics, strict=True):
        for i, (label, color) in enumerate(zip(labels, palette(len(labels)), strict=True)):
            agg = (
                results.filter((pl.col(group) == label) & pl.col(metric).is_not_null())
                .group_by("non_embedding_params")
                .agg(pl.col(metric).mean())
                .sort("non_embedding_params")
            )
            ax.plot(
                agg["non_embedding_params"], agg[metric], marker="osD^vP*X"[i % 8],
                color=color, label=str(label),
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(AXIS_LABELS["non_embedding_params"])
        ax.set_ylabel(metric_label(metric))
        ax.legend(loc="best", fontsize=8.5)
    return fig


def plot_task(
    task: str, points: Sequence[tuple[float, dict[str, dict]]], metric: str = "hr@10"
) -> Figure:
    """A challenge task's ``metric`` against model size, one line per group or rate.

    ``points`` holds ``(non_embedding_params, {series label: metrics})`` per run.
    """
    labels = sorted({label for _, series in points for label in series}, key=natural_key)
    fig, (ax,) = new_figure(width=7.6, height=4.6)
    colors = palette(len(labels))
    markers = "osD^vP*X"
    for i, (label, color) in enumerate(zip(labels, colors, strict=True)):
        xy = sorted(
            (n, series[label][metric])
            for n, series in points
            if label in series and metric in series[label]
        )
        if xy:
            xs, ys = zip(*xy, strict=True)
            ax.plot(xs, ys, marker=markers[i % len(markers)], color=color, lw=1.6, label=label)
    ax.set_xscale("log")
    ax.set_xlabel(AXIS_LABELS["non_embedding_params"])
    ax.set_ylabel(metric_label(metric))
    ax.set_title(f"{task}: {metric_label(metric).split(' (')[0]} by model size")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="group", fontsize=8.5)
    return tidy_log_axes(fig)


def natural_key(label: str) -> tuple:
    """Sort "replace / 0.1" before "replace / 0.5" and "G2" before "G10"."""
    return tuple(
        (0, float(t), "") if re.fullmatch(r"[-+]?\d*\.?\d+", t) else (1, 0.0, t)
        for t in re.split(r"(?<=[a-zA-Z])(?=\d)|\s*/\s*|[<>=]+", label)
        if t
    )
