"""The checkpoint-selection rule: which evaluation is best, and when to stop looking.

``best-valid-then-test`` (the proper protocol) keeps the best validation checkpoint;
``legacy-best-epoch-on-test`` (the HSTU public code's reading) keeps the best test epoch and
is labelled as such. Pure: the rule takes the last :class:`Selection` and returns the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recscale.data.splits import EvalSet, Split
from recscale.train.config import EvalConfig


@dataclass(frozen=True)
class Selection:
    """Which evaluation was best so far (the checkpoint-selection rule's memory)."""

    best_metric: float | None = None
    best_epoch: int | None = None
    evals_since_best: int = 0
    legacy_best: dict[str, Any] | None = None


def is_legacy_selection(eval_cfg: EvalConfig, split: Split) -> bool:
    """Best epoch read off test: asked for, or forced by a split without validation."""
    return eval_cfg.selection == "test" or split.valid is None


@dataclass(frozen=True)
class Evaluation:
    """One evaluation's scores by part (``valid``, ``test``) and what the rule made of them."""

    scores: dict[str, dict[str, float]]
    selection: Selection
    metric: float | None
    improved: bool


def evaluate_and_select(
    evaluate_on: Callable[[EvalSet], dict[str, float]],
    split: Split,
    eval_cfg: EvalConfig,
    selection: Selection,
    epoch: int,
) -> Evaluation:
    """Score ``split`` (valid, and test when the rule reads it) and apply the selection
    rule to ``selection``, the rule's memory so far."""
    select = eval_cfg.select_metric
    legacy = is_legacy_selection(eval_cfg, split)
    scores: dict[str, dict[str, float]] = {}
    metric: float | None = None
    legacy_best = selection.legacy_best
    if split.valid is not None:
        scores["valid"] = evaluate_on(split.valid)
        metric = scores["valid"][select]
    if legacy or eval_cfg.track_test:
        scores["test"] = evaluate_on(split.test)
        current = scores["test"][select]
        if legacy_best is None or current > legacy_best[select]:
            legacy_best = dict(scores["test"], epoch=epoch)
        if legacy:
            metric = current
    if metric is not None and (selection.best_metric is None or metric > selection.best_metric):
        return Evaluation(scores, Selection(metric, epoch, 0, legacy_best), metric, True)
    stalled = Selection(
        selection.best_metric, selection.best_epoch, selection.evals_since_best + 1, legacy_best
    )
    return Evaluation(scores, stalled, metric, False)
