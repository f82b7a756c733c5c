"""Where a sweep stands, read from its directory, and how long it has left.

:func:`scan` reads each run's files (``final.json``, ``failed.json``, the claim's owner
record, the last line of ``metrics.jsonl``) into a :class:`RunStatus`; it works the same
whichever process, machine or Ray task trains the run. :func:`estimate` turns the statuses
into time left, per run and for the sweep: finished runs give ``seconds = a + b · FLOPs``
(a fixed part for data and evaluation, a part proportional to training compute), fitted
by non-negative least squares once two runs have finished and taken half-and-half from the
first one before that; a running run extrapolates its own epochs. Pure but for ``scan``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from recscale.scaling.claims import (
    FAILED,
    FAILED_JSON,
    FINISHED,
    holder,
    read_json,
    run_dir,
    run_state,
)
from recscale.train.config import RunConfig
from recscale.train.record import FINAL_JSON

PENDING, RUNNING = "pending", "running"


@dataclass(frozen=True)
class RunStatus:
    """One run as the sweep directory shows it.

    ``fraction`` of training done (epochs, or tokens when the run has a token budget);
    ``elapsed_s`` its training time so far (finished: its recorded wall time);
    ``cost`` its training FLOPs (finished: measured; otherwise planned; ``None`` unknown).
    """

    name: str
    state: str  # PENDING, RUNNING, FINISHED or FAILED
    fraction: float = 0.0
    epoch: int = 0
    epochs: int = 0  # planned: the config's, or fewer when the token budget ends it first
    elapsed_s: float = 0.0
    cost: float | None = None
    since_epoch_s: float = 0.0  # time since the last epoch record was written
    tokens: int | None = None  # finished: trained; otherwise: the budget, if it has one
    per_token: float | None = None  # training FLOPs per token
    holder: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Estimate:
    remaining_s: dict[str, float | None]  # per unfinished run
    overall_s: float | None
    done: int  # finished + failed
    total: int
    completed: float  # done plus the fractions of running runs


def scan(
    out: Path, configs: Sequence[RunConfig], since: float, now: float | None = None
) -> list[RunStatus]:
    """The status of every run of the sweep (``configs`` in sweep order, each named)."""
    now = time.time() if now is None else now
    num_items = _num_items(out, configs)
    statuses = [_status(out, cfg, since, now, _flops_per_token(cfg, num_items)) for cfg in configs]
    # A run without a token budget is planned at the finished runs' mean tokens.
    done = [s.tokens for s in statuses if s.state == FINISHED and s.tokens]
    mean_tokens = float(np.mean(done)) if done else None
    return [
        replace(s, cost=s.per_token * (s.tokens or mean_tokens))
        if s.per_token and (s.tokens or mean_tokens)
        else s
        for s in statuses
    ]


def _status(
    out: Path, cfg: RunConfig, since: float, now: float, per_token: float | None
) -> RunStatus:
    name = str(cfg.name)
    folder = run_dir(out, name)
    state = run_state(out, name, since)
    if state == FINISHED:
        facts = (read_json(folder / FINAL_JSON) or {}).get("facts", {})
        return RunStatus(
            name,
            FINISHED,
            fraction=1.0,
            epoch=int(facts.get("epochs", 0)),
            epochs=cfg.train.epochs,
            elapsed_s=float(facts.get("wall_time_s", 0.0)),
            tokens=facts.get("tokens"),
            per_token=per_token,
        )
    if state == FAILED:
        error = (read_json(folder / FAILED_JSON) or {}).get("error")
        return RunStatus(name, FAILED, epochs=cfg.train.epochs, error=error)
    planned = RunStatus(
        name, PENDING, epochs=cfg.train.epochs, tokens=cfg.train.max_tokens, per_token=per_token
    )
    owner = holder(out, name)
    if owner is None or _dead(owner):  # a dead holder's run waits for a taker
        return planned
    last, written = _last_record(folder / "metrics.jsonl")
    planned = replace(planned, state=RUNNING, holder=f"pid {owner['pid']} on {owner['host']}")
    if last is None:  # claimed, first epoch under way
        return replace(planned, since_epoch_s=max(0.0, now - owner["since"]))
    epoch, tokens = int(last.get("epoch", 0)), int(last.get("tokens", 0))
    fraction, epochs = epoch / cfg.train.epochs, cfg.train.epochs
    if cfg.train.max_tokens and tokens > 0 and epoch > 0:
        # A token budget ends the run first: so many epochs of this many tokens each.
        fraction = max(fraction, tokens / cfg.train.max_tokens)
        epochs = min(epochs, math.ceil(cfg.train.max_tokens * epoch / tokens))
    return replace(
        planned,
        fraction=min(fraction, 1.0),
        epoch=epoch,
        epochs=epochs,
        elapsed_s=float(last.get("wall_time_s", 0.0)),
        since_epoch_s=max(0.0, now - written),
    )


def estimate(statuses: Sequence[RunStatus]) -> Estimate:
    """Seconds left per unfinished run and for the sweep, as the runs so far suggest."""
    finished = [s for s in statuses if s.state == FINISHED]
    model = time_model([(s.elapsed_s, s.cost) for s in finished])
    remaining: dict[str, float | None] = {}
    for s in statuses:
        if s.state in (FINISHED, FAILED):
            continue
        if s.state == RUNNING and s.fraction > 0:
            own = s.elapsed_s * (1 - s.fraction) / s.fraction
            remaining[s.name] = max(0.0, own - s.since_epoch_s)
        elif model is not None:
            spent = s.elapsed_s + s.since_epoch_s if s.state == RUNNING else 0.0
            remaining[s.name] = max(0.0, model(s.cost) - spent)
        else:
            remaining[s.name] = None
    running = [s for s in statuses if s.state == RUNNING]
    overall = None
    if all(v is not None for v in remaining.values()):
        left = [v for v in remaining.values() if v is not None]
        longest = max((remaining[s.name] or 0.0 for s in running), default=0.0)
        overall = max(longest, sum(left) / max(1, len(running))) if left else 0.0
    done = sum(s.state in (FINISHED, FAILED) for s in statuses)
    return Estimate(
        remaining_s=remaining,
        overall_s=overall,
        done=done,
        total=len(statuses),
        completed=done + sum(s.fraction for s in running),
    )


def time_model(points: Sequence[tuple[float, float | None]]):
    """``cost -> seconds`` from finished runs' ``(seconds, FLOPs)``; ``None`` before any.

    Two or more runs with known, distinct FLOPs: ``a + b · FLOPs`` by non-negative least
    squares. One: half its time fixed, half proportional. FLOPs unknown: the mean time.
    """
    if not points:
        return None
    walls = np.array([w for w, _ in points], dtype=float)
    costs = [c for _, c in points]
    if any(c is None or c <= 0 for c in costs):
        mean = float(walls.mean())
        return lambda cost: mean
    x = np.array(costs, dtype=float)
    if len(points) >= 2 and np.ptp(x) > 0:
        scale = x.max()
        (a, b), _ = nnls(np.column_stack([np.ones_like(x), x / scale]), walls)
        b /= scale
    else:
        a, b = walls.mean() / 2, walls.mean() / 2 / x.mean()
    return lambda cost: float(a + b * (cost if cost is not None else x.mean()))


def _flops_per_token(cfg: RunConfig, num_items: int | None) -> float | None:
    """Training FLOPs per target position: the encoder, plus the full-catalogue output
    layer (which dominates small models) when the item count is known."""
    from recscale.models.size import flops_per_token

    try:
        flops = flops_per_token(cfg.model, num_items or 0, cfg.model.max_len)
    except Exception:  # a config the closed form does not cover: no FLOPs weighting
        return None
    return float(flops.training + (3 * flops.output_forward if num_items else 0))


def _num_items(out: Path, configs: Sequence[RunConfig]) -> int | None:
    """The item count of the sweep's data, from the first run that has loaded it."""
    for cfg in configs:
        record = read_json(run_dir(out, str(cfg.name)) / "dataset.json")
        if record is not None and "items" in record.get("statistics", {}):
            return int(record["statistics"]["items"])
    return None


def _last_record(path: Path) -> tuple[dict | None, float]:
    try:
        lines = path.read_text().splitlines()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None, 0.0
    for line in reversed(lines):
        try:
            return json.loads(line), mtime
        except json.JSONDecodeError:
            continue  # a line being written
    return None, mtime


def _dead(owner: dict) -> bool:
    """Whether the holder named by an owner record is known to be gone (same host only)."""
    if owner.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, KeyError, ValueError):
        return False
    return False
