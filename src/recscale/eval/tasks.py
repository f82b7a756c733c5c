"""Challenge evaluations (Zhang et al. 2023, §5): where does a bigger model help?

Each task turns a run's test set into one or more derived evaluation sets (users grouped
by their target's popularity, histories truncated or corrupted, several future targets)
and reports the usual ranking metrics per group, under the run's protocol. Tasks are
registered in :data:`TASKS` (``eval/task_registry.py``) like backbones, so a user adds one with
``@register_task("name", "description", **option_defaults)`` on a function
``(TaskContext, options) -> dict``.

Every task is exact at its neutral setting: noise rate 0 and a multi-step horizon of 1
give the plain test metrics, and a cold-start cut longer than every history changes
nothing. The tests hold them to that.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recscale.data.splits import EvalSet
from recscale.errors import RecscaleError
from recscale.eval.derived import (
    corrupt,
    eval_set_from,
    history_rows,
    horizon_view,
    item_popularity,
    map_extras,
    popularity_groups,
    repeat_targets,
    truncate,
    unseen_tail,
)
from recscale.eval.evaluator import top_items
from recscale.eval.task_registry import (
    RESULT_FORMAT,
    TASKS,
    Task,
    TaskContext,
    evaluate_task,
    flatten_result,
    parse_options,
    register_task,
    saved_result,
    summarise,
)

__all__ = [  # the registry, for users who add a task of their own
    "RESULT_FORMAT",
    "TASKS",
    "Task",
    "TaskContext",
    "evaluate_task",
    "flatten_result",
    "parse_options",
    "register_task",
    "saved_result",
    "summarise",
]


@register_task(
    "long-tail",
    "metrics per popularity group of the target item (G1 = most popular)",
    bounds=(0.2,),
)
def long_tail(ctx: TaskContext, options: dict[str, Any]) -> dict[str, Any]:
    counts = item_popularity(ctx.split.train)
    groups = popularity_groups(counts, options["bounds"])
    test = ctx.split.test
    ranks = ctx.ranks(test)
    target_group = groups[test.targets]
    total = max(int(counts.sum()), 1)
    edges = [0.0, *sorted(options["bounds"]), 1.0]
    result: dict[str, Any] = {}
    for g in range(1, len(edges)):
        in_group = groups == g
        name = f"G{g} (items {edges[g - 1]:.0%}-{edges[g]:.0%} by popularity)"
        result[name] = {
            **summarise(ranks[target_group == g], ctx.ks),
            "items": int(in_group.sum()),
            "train_share": float(counts[in_group].sum() / total),
        }
    return result


@register_task(
    "cold-start",
    "users shown only their last k history items; and users grouped by history length",
    lengths=(1, 3, 5, 10),
    short=20,
)
def cold_start(ctx: TaskContext, options: dict[str, Any]) -> dict[str, Any]:
    test = ctx.split.test
    visible = {str(k): ctx.metrics(truncate(test, k)) for k in sorted(set(options["lengths"]))}
    visible["all"] = ctx.metrics(test)
    ranks = ctx.ranks(test)
    short = test.histories.lengths <= options["short"]
    by_length = {
        f"<={options['short']}": summarise(ranks[short], ctx.ks),
        f">{options['short']}": summarise(ranks[~short], ctx.ks),
    }
    return {"visible": visible, "history_length": by_length}


def training_targets(train) -> np.ndarray:
    """``bool [num_items + 1]``: the items that are some training sequence's next item (any
    position but the first)."""
    first = train.offsets[:-1][train.lengths > 0]
    is_target = np.ones(len(train.items), dtype=bool)
    is_target[first] = False
    seen = np.zeros(train.num_items + 1, dtype=bool)
    seen[train.items[is_target]] = True
    return seen


@register_task(
    "cold-items",
    "test targets never seen as a training target (cold) apart from the rest (warm)",
)
def cold_items(ctx: TaskContext, options: dict[str, Any]) -> dict[str, Any]:
    seen = training_targets(ctx.split.train)
    test = ctx.split.test
    ranks = ctx.ranks(test)
    cold = ~seen[test.targets]
    result: dict[str, Any] = {}
    # No cold target (a plain split): the cold group is left out rather than the task refused,
    # so a sweep that mixes splits reports every run.
    if cold.any():
        result["cold"] = {
            **summarise(ranks[cold], ctx.ks),
            "items": len(np.unique(test.targets[cold])),
        }
    result["warm"] = {
        **summarise(ranks[~cold], ctx.ks),
        "items": len(np.unique(test.targets[~cold])),
    }
    return {
        **result,
        "all": summarise(ranks, ctx.ks),
        "never_trained_items": int((~seen[1:]).sum()),
    }


@register_task(
    "noise",
    "history items replaced or deleted at random at test time",
    rates=(0.0, 0.1, 0.2, 0.3, 0.5),
    modes=("replace", "delete"),
    seed=0,
)
def noise(ctx: TaskContext, options: dict[str, Any]) -> dict[str, Any]:
    modes = options["modes"]
    if isinstance(modes, str):
        modes = (modes,)
    return {
        mode: {
            str(rate): ctx.metrics(corrupt(ctx.split.test, rate, mode, options["seed"]))
            for rate in options["rates"]
        }
        for mode in modes
    }


@register_task(
    "multi-step",
    "the next k items: as a set from one query, and autoregressively (top-1 fed back)",
    version=2,  # version 1 scored horizons whose targets had been training targets
    horizons=(1, 2),
    allow_seen=False,
)
def multi_step(ctx: TaskContext, options: dict[str, Any]) -> dict[str, Any]:
    horizons = sorted(set(options["horizons"]))
    if not horizons or horizons[0] < 1:
        raise RecscaleError(f"multi-step horizons must be >= 1, got {list(horizons)}")
    # Horizon k predicts the last k items of history + target from what precedes them;
    # those items must not have been training targets, or a model that memorised its
    # training data looks better the larger it is.
    unseen = unseen_tail(ctx.split)
    if horizons[-1] > unseen and not options["allow_seen"]:
        raise RecscaleError(
            f"multi-step horizon {horizons[-1]}: with split {ctx.split.name!r} only the last "
            f"{unseen} item(s) of each test sequence were never training targets, so longer "
            "horizons would score items the model was trained on; use horizons <= "
            f"{unseen}, or allow_seen=true to measure anyway (labelled in the result)"
        )
    out: dict[str, Any] = {"set": {}, "autoregressive": {}, "seen_targets": horizons[-1] > unseen}
    # The same users at every horizon (those with enough history for the longest one), so
    # the curves compare like with like.
    for k in horizons:
        view, targets = horizon_view(ctx.split.test, k, min_input=1 + horizons[-1] - k)
        out["set"][str(k)] = ctx.metrics(repeat_targets(view, targets))
        out["autoregressive"][str(k)] = _rollout(ctx, view, targets)
    return out


def _rollout(ctx: TaskContext, view: EvalSet, targets: np.ndarray) -> dict[str, Any]:
    """Step j ranks the j-th future item from the input plus the model's own top-1
    predictions of steps 1..j-1. Returns metrics averaged over steps and per step."""
    seqs, extras = history_rows(view)
    steps = []
    current = view
    for j in range(targets.shape[1]):
        current = EvalSet(current.histories, targets[:, j], view.users)
        steps.append(ctx.ranks(current))
        if j + 1 < targets.shape[1]:
            predicted = top_items(ctx.model, current, max_len=ctx.max_len, k=1, device=ctx.device)[
                :, 0
            ]
            seqs = [np.append(s, p) for s, p in zip(seqs, predicted, strict=True)]
            # A predicted step has no observed time or rating: the last known one is repeated.
            extras = map_extras(extras, lambda i, col: np.append(col, col[-1:] if len(col) else 0))
            current = eval_set_from(view.histories, seqs, targets[:, j], view.users, extras)
    mean = summarise(np.concatenate(steps) if steps else np.zeros(0, np.int64), ctx.ks)
    mean["per_step"] = {str(j + 1): summarise(r, ctx.ks) for j, r in enumerate(steps)}
    return mean


@register_task(
    "cross-domain",
    "metrics per domain of the target item (datasets merged with item domains)",
)
def cross_domain(ctx: TaskContext, options: dict[str, Any]) -> dict[str, Any]:
    test = ctx.split.test
    domains = test.histories.item_domains
    if domains is None:
        raise RecscaleError(
            "task 'cross-domain' needs a dataset with item domains: train on merged datasets, "
            "e.g. data.name: amazon-beauty+amazon-toys"
        )
    names = test.histories.domain_names
    ranks = ctx.ranks(test)
    target_domain = domains[test.targets]
    return {
        "domains": {
            names[d - 1] if d - 1 < len(names) else str(d): summarise(
                ranks[target_domain == d], ctx.ks
            )
            for d in np.unique(target_domain)
        }
    }
