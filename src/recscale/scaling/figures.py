"""The report's figures, picked through registries rather than law names.

Each law declares its plot kind (``Law.plot``); :data:`PLOT_KINDS` maps the kind to how one
fitted law is drawn and where its figures stand in the report. Figures of the whole results
table (data scaling, backbones) and of the challenge tasks take their places between them.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from recscale.registry import Registry
from recscale.scaling import plots, run_plots
from recscale.scaling.sections import TASK_METRIC, LawReport, ReportFigure, TaskPoints

CROSS_METRICS = ("loss", "hr@10", "ndcg@10")
RANKING_METRICS = ("auc", "gauc", "logloss")


@dataclass(frozen=True)
class Drawn:
    """A figure before rendering; ``slug`` is its file name without the ``fig-NN-`` prefix."""

    slug: str
    title: str
    caption: str
    figure: Figure


@dataclass(frozen=True)
class PlotKind:
    """``draw(results, report)`` makes one fitted law's figure. ``order`` places the figures of
    this kind in the report; within one order they keep the order of the fits."""

    order: int
    draw: Callable[[pl.DataFrame, LawReport], Drawn]


PLOT_KINDS: Registry[PlotKind] = Registry("plot kind")


def plot_kind(name: str, order: int) -> Callable:
    """Register ``draw`` as the plotter of laws whose ``plot`` is ``name``."""

    def add(draw: Callable[[pl.DataFrame, LawReport], Drawn]) -> Callable:
        PLOT_KINDS.register(name)(PlotKind(order, draw))
        return draw

    return add


@plot_kind("vs_params", order=10)
@plot_kind("vs_data", order=10)
def _one_input(results: pl.DataFrame, rep: LawReport) -> Drawn:
    caption = (
        f"{rep.fit.law.formula}. Filled dots: runs in the fit; diamonds with bars: "
        "predictions for held-out runs and their bootstrap prediction interval; "
        "open squares: what those runs measured (label: relative error)."
    )
    return Drawn(
        rep.law, rep.name, caption, plots.plot_one_input_law(rep.fit, rep.holdout, title=rep.name)
    )


@plot_kind("vs_compute", order=30)
def _vs_compute(results: pl.DataFrame, rep: LawReport) -> Drawn:
    caption = f"{rep.fit.law.formula}. {rep.fit.law.notes}"
    return Drawn(
        "compute", rep.name, caption, plots.plot_compute_law(results, rep.fit, rep.holdout)
    )


@plot_kind("surface", order=40)
def _surface(results: pl.DataFrame, rep: LawReport) -> Drawn:
    caption = f"{rep.fit.law.formula}. {rep.fit.law.notes}"
    return Drawn(rep.law, rep.name, caption, plots.plot_performance_law(rep.fit, rep.holdout))


@plot_kind("frontier", order=60)
def _frontier(results: pl.DataFrame, rep: LawReport) -> Drawn:
    c = rep.fit.x[:, 0] * rep.fit.x[:, 1] * 6
    budgets = np.geomspace(c.min(), c.max() * 100, 60)
    return Drawn(
        "frontier",
        f"Compute-optimal frontier ({rep.name})",
        "N and D minimising the fitted joint law at each compute budget, "
        "extrapolated 100x past the largest run.",
        plots.plot_frontier(rep.fit, budgets),
    )


# ---- figures of the whole table, each with its place among the law figures --------------------
def _data_scaling(results: pl.DataFrame, reports: Sequence[LawReport]) -> Drawn | None:
    if not (
        "data_fraction" in results.columns
        and results["data_fraction"].n_unique() > 1
        and "loss" in results.columns
    ):
        return None
    return Drawn(
        "data",
        "Loss vs training tokens",
        "Each colour is one model size trained on a fraction of the data; lines are "
        "the fitted joint law at that size.",
        run_plots.plot_data_scaling(results, [r.fit for r in reports]),
    )


def _backbones(results: pl.DataFrame, reports: Sequence[LawReport]) -> Drawn | None:
    if not ("backbone" in results.columns and results["backbone"].n_unique() > 1):
        return None
    if not any(m in results.columns for m in CROSS_METRICS):
        return None
    return Drawn(
        "backbones",
        "Cross-backbone scaling",
        "Mean over seeds at the full data size; a backbone that keeps improving as "
        "blocks are added scales.",
        run_plots.plot_cross_backbone(results, CROSS_METRICS),
    )


def _ranking_ladder(results: pl.DataFrame) -> pl.DataFrame:
    """The ranking runs at the sweep's most common scoring network and negative ratio."""
    table = results.filter(pl.col("auc").is_not_null())
    for switch in ("scorer", "negative_ratio"):
        table = table.filter(pl.col(switch) == table[switch].mode().sort()[0])
    return table


def _ranking_blocks(results: pl.DataFrame, reports: Sequence[LawReport]) -> Drawn | None:
    if "auc" not in results.columns:
        return None
    ladder = _ranking_ladder(results)
    scorer, ratio = ladder["scorer"][0], ladder["negative_ratio"][0]
    return Drawn(
        "ranking-blocks",
        "Ranking: AUC, GAUC and logloss by blocks",
        f"One line per ranker (target-aware backbones and DIN), scoring network {scorer}, "
        f"negative ratio {ratio:g}; a ranker whose AUC keeps rising with blocks scales. "
        "Lower logloss need not mean higher AUC.",
        run_plots.plot_cross_backbone(ladder, RANKING_METRICS),
    )


def _ranking_variants(results: pl.DataFrame, reports: Sequence[LawReport]) -> Drawn | None:
    if "auc" not in results.columns:
        return None
    if results["negative_ratio"].n_unique() < 2 and results["scorer"].n_unique() < 2:
        return None
    table = results.filter(pl.col("auc").is_not_null())
    # compare the switches at one depth: the one with the most runs (rankers without blocks,
    # DIN, stay in)
    depth = table["layers"].mode().sort()[0]
    table = table.filter((pl.col("layers") == depth) | (pl.col("ranker") != "target_aware"))
    return Drawn(
        "ranking-variants",
        "Ranking: negative-sampling ratio and scoring network",
        f"Test AUC at {depth} blocks against the training negative ratio (at each model's most "
        "common scoring network) and per scoring network (at its most common ratio).",
        run_plots.plot_ranking_variants(table),
    )


def _text_features(results: pl.DataFrame, reports: Sequence[LawReport]) -> Drawn | None:
    if "item_features" not in results.columns or results["item_features"].n_unique() < 2:
        return None
    table = results.filter(pl.col("split") != "cold_items")
    if table.height == 0 or table["item_features"].n_unique() < 2:
        return None
    return Drawn(
        "item-features",
        "Item features: id-only against side information",
        "Test metrics per model size, one line per way of building item vectors (id = the "
        "id table alone; text = plus a learned projection of the frozen text embedding).",
        run_plots.plot_by_size(table, "item_features", CROSS_METRICS),
    )


def _semantic_ids(results: pl.DataFrame, reports: Sequence[LawReport]) -> Drawn | None:
    if "code_levels" not in results.columns:
        return None
    return Drawn(
        "semantic-ids",
        "Semantic-ID generative retrieval by size",
        "Test metrics per model size; *-semantic-ids runs rank by constrained beam search "
        "over item code tuples, id runs (if the sweep has them) over every item.",
        run_plots.plot_by_size(results, "backbone", CROSS_METRICS),
    )


TABLE_FIGURES: tuple[tuple[int, Callable[..., Drawn | None]], ...] = (
    (20, _data_scaling),
    (50, _backbones),
    (52, _ranking_blocks),
    (54, _ranking_variants),
    (56, _text_features),
    (58, _semantic_ids),
)
TASK_ORDER = 70


def _task(task: str, points: Sequence[tuple[str, float, dict[str, dict]]]) -> Drawn:
    return Drawn(
        f"task-{task}",
        f"Challenge task: {task}",
        f"{TASK_METRIC} per group (or noise rate, visible history, horizon) against "
        "model size; see the task's table for the numbers.",
        run_plots.plot_task(task, [(n, series) for _, n, series in points], TASK_METRIC),
    )


def build_figures(
    results: pl.DataFrame, reports: Sequence[LawReport], tasks: TaskPoints | None = None
) -> list[ReportFigure]:
    """Every figure of the report, in order, rendered to PNG (numbered ``fig-01-...``)."""
    jobs: list[tuple[int, int, Callable[[], Drawn | None]]] = []
    for i, rep in enumerate(reports):
        kind = PLOT_KINDS.get(rep.fit.law.plot)
        jobs.append((kind.order, i, partial(kind.draw, results, rep)))
    for order, draw in TABLE_FIGURES:
        jobs.append((order, 0, partial(draw, results, reports)))
    for i, (task, points) in enumerate((tasks or {}).items()):
        jobs.append((TASK_ORDER, i, partial(_task, task, points)))
    out: list[ReportFigure] = []
    with plots.style():
        for _, _, job in sorted(jobs, key=lambda j: j[:2]):
            drawn = job()
            if drawn is not None:
                slug = f"fig-{len(out) + 1:02d}-{drawn.slug}"
                out.append(ReportFigure(slug, drawn.title, drawn.caption, _png(drawn.figure)))
    return out


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()
