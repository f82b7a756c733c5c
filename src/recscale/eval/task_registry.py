"""The challenge-task registry: what a task sees, how its options parse, how results keep.

A task is a function ``(TaskContext, options) -> dict`` registered with
``@register_task("name", "description", **option_defaults)``; the tasks that ship with
recscale live in :mod:`recscale.eval.tasks`. Loading a run directory is the caller's job
(``recscale.train.runs.run_task``): this layer only evaluates a model it is given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recscale.data.splits import EvalSet, Split
from recscale.errors import RecscaleError
from recscale.eval.evaluator import user_ranks
from recscale.eval.metrics import DEFAULT_KS, rank_metrics
from recscale.eval.protocols import Protocol
from recscale.models.contract import Recommender
from recscale.registry import Registry


@dataclass
class TaskContext:
    """What a task may use: the model, the run's split and how the run evaluates."""

    model: Recommender
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
    ranks = ranks[ranks > 0]  # rank 0: a row the protocol leaves out
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
    try:
        saved = json.loads(path.read_bytes().decode("utf-8"))
    except ValueError:
        return None  # a result torn by a kill is computed again
    if not isinstance(saved, dict):
        return None
    same = (
        saved.get("format") == RESULT_FORMAT
        and saved.get("task_version", 1) == TASKS.get(task).version
        and saved.get("options") == _normalised(parse_options(task, None))
        and saved.get("protocol") == protocol
        and saved.get("checkpoint") == "best"
    )
    return saved if same else None


def evaluate_task(ctx: TaskContext, task: str, options: Mapping[str, Any], **record: Any):
    """Run ``task`` on ``ctx`` with parsed ``options``: the saved-result record, with the
    caller's ``record`` fields (run, checkpoint) beside the task's own."""
    spec = TASKS.get(task)
    return {
        "format": RESULT_FORMAT,
        **record,
        "task": task,
        "task_version": spec.version,
        "description": spec.description,
        "protocol": ctx.protocol.name,
        "options": _normalised(options),
        "result": spec.run(ctx, dict(options)),
    }
