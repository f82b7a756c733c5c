"""Challenge evaluations (Zhang et al. 2023, §5): where does a bigger model help?

Each task turns a run's test set into one or more derived evaluation sets (users grouped
by their target's popularity, histories truncated or corrupted, several future targets)
and reports the usual ranking metrics per group, under the run's protocol. Tasks are
registered in :data:`TASKS` like backbones, so a user adds one with
``@register_task("name", "description", **option_defaults)`` on a function
``(TaskContext, options) -> dict``.

Every task is exact at its neutral setting: noise rate 0 and a multi-step horizon of 1
give the plain test metrics, and a cold-start cut longer than every history changes
nothing. The tests hold them to that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recscale.data.dataset import SequenceDataset
from recscale.data.splits import EvalSet, Split
from recscale.errors import RecscaleError
from recscale.eval.evaluator import top_items, user_ranks
from recscale.eval.metrics import DEFAULT_KS, rank_metrics
from recscale.eval.protocols import Protocol, parse_protocol
from recscale.registry import Registry


@dataclass
class TaskContext:
    """What a task may use: the model, the run's split and how the run evaluates."""

    model: Any
    split: Split
    protocol: Protocol
    max_len: int
    device: torch.device
    ks: tuple[int, ...] = DEFAULT_KS
    batch_size: int = 256

    def metrics(self, eval_set: EvalSet) -> dict[str, float]:
        """Plain metrics of ``eval_set`` (and its size as ``users``)."""
        return summarise(self.ranks(eval_set), self.ks)

    def ranks(self, eval_set: EvalSet) -> np.ndarray:
        ranks, _ = user_ranks(
            self.model,
            eval_set,
            self.protocol,
            max_len=self.max_len,
            batch_size=self.batch_size,
            device=self.device,
        )
        return ranks


@dataclass(frozen=True)
class Task:
    """A registered challenge evaluation and its options with their defaults."""

    run: Callable[[TaskContext, dict[str, Any]], dict[str, Any]]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    # Bump when the task's results change meaning: saved results of an older version are
    # recomputed rather than reused.
    version: int = 1


TASKS: Registry[Task] = Registry("task")


def register_task(name: str, description: str, *, version: int = 1, **defaults: Any):
    """Decorator: register ``fn(ctx, options) -> result`` as task ``name``; ``defaults`` are
    its options."""

    def add(fn: Callable[[TaskContext, dict[str, Any]], dict[str, Any]]):
        TASKS.register(name)(Task(fn, defaults, description, version))
        return fn

    return add


def summarise(ranks: np.ndarray, ks: Iterable[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean ``hr@k``, ``ndcg@k``, ``mrr`` of 1-based ``ranks`` and their count as ``users``."""
    out: dict[str, float] = {"users": len(ranks)}
    if len(ranks) == 0:
        return out
    for name, values in rank_metrics(torch.as_tensor(ranks), ks).items():
        out[name] = float(values.mean())
    return out


def parse_options(task: str, given: Sequence[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """``["rates=0,0.1", "mode=delete"]`` (or a mapping) -> typed options over the defaults.

    A value takes the type of its default: numbers, comma-separated lists of numbers,
    strings. An unknown key names the task's allowed keys.
    """
    spec = TASKS.get(task)
    options = dict(spec.defaults)
    if given is None:
        return options
    pairs = given.items() if isinstance(given, Mapping) else (_split_pair(p) for p in given)
    for key, value in pairs:
        if key not in spec.defaults:
            allowed = ", ".join(sorted(spec.defaults)) or "(none)"
            raise RecscaleError(f"task {task!r} has no option {key!r}; allowed: {allowed}")
        options[key] = _coerce(task, key, value, spec.defaults[key])
    return options


def _split_pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise RecscaleError(f"task option {text!r} must look like key=value")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _coerce(task: str, key: str, value: Any, default: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        if isinstance(default, tuple):
            kind = type(default[0]) if default else float
            return tuple(kind(v) for v in value.split(",") if v.strip())
        if isinstance(default, bool):
            return value.lower() in ("1", "true", "yes")
        return type(default)(value)
    except ValueError:
        raise RecscaleError(
            f"task {task!r} option {key}={value!r}: expected {type(default).__name__} "
            f"like {default!r}"
        ) from None


# ---------------------------------------------------------------- derived eval sets


# Per-interaction columns that travel with the items when a task rewrites histories.
Extras = dict[str, list[np.ndarray]]
_EXTRA_COLUMNS = {"timestamps": np.int64, "ratings": np.float32}


def eval_set_from(
    template: SequenceDataset,
    histories: Sequence[np.ndarray],
    targets: np.ndarray,
    users: np.ndarray,
    extras: Extras | None = None,
    rows: np.ndarray | None = None,
) -> EvalSet:
    """An ``EvalSet`` with the given histories, sharing ``template``'s item vocabulary;
    ``extras`` holds per-history ``timestamps`` / ``ratings`` aligned with the items (kept
    where the template has them); ``rows`` picks the template rows they stand for (all, in
    order, when None)."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    offsets = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(histories).astype(np.int64) if len(histories) else np.zeros(0, np.int64)
    columns: dict[str, np.ndarray | None] = {}
    for name, dtype in _EXTRA_COLUMNS.items():
        given = (extras or {}).get(name)
        keep = given is not None and getattr(template, name) is not None
        columns[name] = (
            (np.concatenate(given) if len(given) else np.zeros(0)).astype(dtype) if keep else None
        )
    ds = replace(
        template,
        offsets=offsets,
        items=flat,
        user_ids=template.user_ids if rows is None else template.user_ids[rows],
        **columns,
    )
    return EvalSet(ds, np.asarray(targets, dtype=np.int64), np.asarray(users, dtype=np.int64))


def _rows(eval_set: EvalSet) -> tuple[list[np.ndarray], Extras]:
    """Each history's items, and its per-interaction columns that exist."""
    h = eval_set.histories
    seqs = [h.sequence(i) for i in range(h.num_users)]
    extras = {
        name: [getattr(h, name)[h.offsets[i] : h.offsets[i + 1]] for i in range(h.num_users)]
        for name in _EXTRA_COLUMNS
        if getattr(h, name) is not None
    }
    return seqs, extras


def _map_extras(extras: Extras, pick) -> Extras:
    """``pick(i, column)`` applied to every history's columns."""
    return {name: [pick(i, col) for i, col in enumerate(cols)] for name, cols in extras.items()}


def _subset(eval_set: EvalSet, rows: np.ndarray) -> EvalSet:
    """The rows ``rows`` of an eval set (histories keep their own user index)."""
    return EvalSet(
        eval_set.histories.select_users(rows), eval_set.targets[rows], eval_set.users[rows]
    )


def item_popularity(train: SequenceDataset) -> np.ndarray:
    """``int64 [num_items + 1]`` training interactions per item (index 0 = padding)."""
    return np.bincount(train.items, minlength=train.num_items + 1).astype(np.int64)


def popularity_groups(counts: np.ndarray, bounds: Sequence[float]) -> np.ndarray:
    """``int64 [num_items + 1]`` group 1..G per item: items sorted by training count, most
    popular first (ties by id), cut at the cumulative item fractions ``bounds``."""
    items = np.arange(1, len(counts))
    order = items[np.lexsort((items, -counts[1:]))]
    cuts = np.round(np.asarray(sorted(bounds), dtype=np.float64) * len(order)).astype(int)
    groups = np.zeros(len(counts), dtype=np.int64)
    groups[order] = 1 + np.searchsorted(cuts, np.arange(len(order)), side="right")
    return groups


def truncate(eval_set: EvalSet, keep: int) -> EvalSet:
    """Every history cut to its last ``keep`` items (the cold-start view)."""
    seqs, extras = _rows(eval_set)
    return eval_set_from(
        eval_set.histories,
        [s[-keep:] for s in seqs],
        eval_set.targets,
        eval_set.users,
        _map_extras(extras, lambda i, col: col[-keep:]),
    )


def corrupt(eval_set: EvalSet, rate: float, mode: str, seed: int) -> EvalSet:
    """Each history item independently replaced by a uniform random item (``replace``) or
    dropped (``delete``) with probability ``rate``; seeded per (seed, user). Deleting never
    empties a history: its last item is kept when every item would go. A replaced item
    keeps the original interaction's timestamp and rating."""
    if mode not in NOISE_MODES:
        raise RecscaleError(f"noise mode {mode!r}; allowed: {', '.join(NOISE_MODES)}")
    seqs, extras = _rows(eval_set)
    num_items = eval_set.histories.num_items
    out, kept = [], []
    for seq, user in zip(seqs, eval_set.users, strict=True):
        rng = np.random.default_rng([seed, int(user)])
        hit = rng.random(len(seq)) < rate
        if mode == "replace":
            out.append(np.where(hit, rng.integers(1, num_items + 1, size=len(seq)), seq))
            kept.append(np.ones(len(seq), dtype=bool))
        else:
            if hit.all():
                hit[-1] = False
            out.append(seq[~hit])
            kept.append(~hit)
    return eval_set_from(
        eval_set.histories,
        out,
        eval_set.targets,
        eval_set.users,
        _map_extras(extras, lambda i, col: col[kept[i]]),
    )


NOISE_MODES = ("replace", "delete")


def horizon_view(eval_set: EvalSet, horizon: int, min_input: int) -> tuple[EvalSet, np.ndarray]:
    """The last ``horizon`` items of history + target become targets.

    Returns the eval set of the inputs (target = the first of the ``horizon`` items) and
    ``int64 [U, horizon]`` all targets in order. Only users whose history keeps at least
    ``min_input`` items are included.
    """
    seqs, extras = _rows(eval_set)
    keep = [i for i, s in enumerate(seqs) if len(s) - (horizon - 1) >= min_input]
    inputs, targets = [], []
    for i in keep:
        full = np.append(seqs[i], eval_set.targets[i])
        inputs.append(full[:-horizon])
        targets.append(full[-horizon:])
    targets_arr = np.array(targets, dtype=np.int64).reshape(len(keep), horizon)
    view = eval_set_from(
        eval_set.histories,
        inputs,
        targets_arr[:, 0] if len(keep) else np.zeros(0, np.int64),
        eval_set.users[keep],
        {
            name: [cols[i][: len(inputs[k])] for k, i in enumerate(keep)]
            for name, cols in extras.items()
        },
        rows=np.asarray(keep, dtype=np.int64),
    )
    return view, targets_arr


# ---------------------------------------------------------------- the tasks


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
        out["set"][str(k)] = ctx.metrics(_repeat_targets(view, targets))
        out["autoregressive"][str(k)] = _rollout(ctx, view, targets)
    return out


def unseen_tail(split: Split) -> int:
    """How many trailing items of every test user's history + target were never training
    targets (leave-one-out: 2, the valid and test items; test-only and temporal: 1)."""
    test = split.test
    full = test.histories.lengths + 1
    trained = split.train.lengths[test.users]
    return int((full - np.maximum(trained, 1)).min()) if len(test) else 0


def _repeat_targets(view: EvalSet, targets: np.ndarray) -> EvalSet:
    """One row per (user, future item), all with the user's input: ranked from one query,
    the mean hit rate over the rows is recall@K of the set of future items."""
    u, k = targets.shape
    rows = np.repeat(np.arange(u), k)
    histories = view.histories.select_users(rows)
    return EvalSet(histories, targets.reshape(-1), view.users[rows])


def _rollout(ctx: TaskContext, view: EvalSet, targets: np.ndarray) -> dict[str, Any]:
    """Step j ranks the j-th future item from the input plus the model's own top-1
    predictions of steps 1..j-1. Returns metrics averaged over steps and per step."""
    seqs, extras = _rows(view)
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
            extras = _map_extras(extras, lambda i, col: np.append(col, col[-1:] if len(col) else 0))
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


def flatten_result(result: Mapping[str, Any], prefix: str = "") -> dict[str, dict[str, Any]]:
    """A task's nested result as ``{"mode / rate": metrics}``: every dict holding ``users``
    is one series (works for any registered task)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in result.items():
        if not isinstance(value, Mapping):
            continue
        label = f"{prefix} / {key}" if prefix else str(key)
        if "users" in value:
            out[label] = {k: v for k, v in value.items() if not isinstance(v, Mapping)}
        else:
            out.update(flatten_result(value, label))
    return out


# ---------------------------------------------------------------- entry point


# Bump when a task's result layout or meaning changes: saved results of another format are
# recomputed rather than reused.
RESULT_FORMAT = 2


def _normalised(opts: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()}


def saved_result(run_dir: str | Path, task: str, protocol: str) -> dict[str, Any] | None:
    """The saved default-options result of ``task`` for ``run_dir`` under ``protocol`` (best
    checkpoint), or None when there is none or it was computed differently."""
    path = Path(run_dir) / "tasks" / f"{task}.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    same = (
        saved.get("format") == RESULT_FORMAT
        and saved.get("task_version", 1) == TASKS.get(task).version
        and saved.get("options") == _normalised(parse_options(task, None))
        and saved.get("protocol") == protocol
        and saved.get("checkpoint") == "best"
    )
    return saved if same else None


def run_task(
    run_dir: str | Path,
    task: str,
    options: Sequence[str] | Mapping[str, Any] | None = None,
    protocol: str | None = None,
    checkpoint: str = "best",
    save: bool = True,
) -> dict[str, Any]:
    """Evaluate a finished run on a challenge task; saved to ``RUN/tasks/<task>.json``."""
    from recscale.train.runs import load_run

    spec = TASKS.get(task)
    opts = parse_options(task, options)
    run = load_run(run_dir, checkpoint)
    proto = parse_protocol(protocol or run.cfg.eval.protocol)
    ctx = TaskContext(
        model=run.model,
        split=run.split,
        protocol=proto,
        max_len=run.cfg.model.max_len,
        device=run.device,
        ks=tuple(run.cfg.eval.ks),
        batch_size=run.cfg.eval.batch_size,
    )
    result = {
        "format": RESULT_FORMAT,
        "run": str(run_dir),
        "task": task,
        "task_version": spec.version,
        "description": spec.description,
        "protocol": proto.name,
        "checkpoint": checkpoint,
        "options": _normalised(opts),
        "result": spec.run(ctx, opts),
    }
    if save:
        out = Path(run_dir) / "tasks"
        out.mkdir(exist_ok=True)
        tmp = out / f".{task}.json.tmp"
        tmp.write_text(json.dumps(result, indent=1))
        tmp.replace(out / f"{task}.json")
    return result
