"""Sweeps: one YAML file -> many runs -> one results table.

A sweep spec has a ``base`` run config (inline mapping, or a path to a run YAML),
and the points to run: ``grid`` (axes multiplied out) and/or ``points`` (an
explicit list). Keys are dotted run-config keys::

    name: hstu-ml1m
    base: {data: {name: ml-1m-sasrec}, model: {backbone: hstu}}
    grid: {seed: [1, 2]}
    points:
      - {model.layers: 2, model.dim: 32}
      - {model.layers: 4, model.dim: 64}

Runs live in ``<out>/runs/<name>``. A run with ``final.json`` is done and skipped;
one with a checkpoint resumes from it; one that raises is retried once and then
reported in ``failures.json`` without stopping the others. Killing the sweep and
running it again loses nothing but the epoch in progress.

Several ``recscale sweep`` processes (on one machine, or on several sharing the directory)
may work one sweep at once: a run is trained only under its claim, a file lock
(:mod:`recscale.scaling.claims`), so each run is trained once, and a run whose worker died
is taken over and resumed. Where the runs train is the executor (:mod:`.executors`: local
processes, or Ray tasks).
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import Field

from recscale.config import StrictModel, apply_overrides, load_yaml, merge, validate
from recscale.errors import RecscaleError
from recscale.scaling.claims import (
    FINISHED,
    RunJob,
    atomic_write,
    atomic_write_text,
    failures,
    run_state,
)
from recscale.scaling.executors import EXECUTORS, ExecutorOptions
from recscale.scaling.sweep_log import sweep_logging
from recscale.scaling.sweep_view import Monitor, make_view
from recscale.train.config import RunConfig, load_run_config
from recscale.train.record import FINAL_JSON, read_run_record, results_row

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"


class SweepSpec(StrictModel):
    name: str
    base: dict[str, Any] | str = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    points: list[dict[str, Any]] = Field(default_factory=list)
    # Which runs the report's laws predict rather than fit, e.g. "largest:2".
    holdout: str | None = "largest:1"
    # "law:metric" pairs the report fits (the metric defaults to the law's own).
    laws: list[str] = Field(
        default_factory=lambda: ["power_n:loss", "log_compute:hr@10", "log_compute:ndcg@10"]
    )
    # Challenge tasks (recscale.eval.tasks) the report evaluates every run on.
    tasks: list[str] = Field(default_factory=list)
    # Per run: CPUs and GPUs (Ray schedules by them; --cpus-per-run/--gpus-per-run override).
    resources: RunResources = Field(default_factory=lambda: RunResources())


@dataclass(frozen=True)
class SweepRun:
    name: str
    coords: dict[str, Any]
    config: RunConfig


class RunResources(StrictModel):
    """What one run asks of the executor: Ray schedules by it (1 CPU when unsaid), and a
    run's torch threads follow ``cpus`` (unsaid: torch's default, split among local jobs)."""

    cpus: float | None = Field(None, gt=0)
    gpus: float = Field(0.0, ge=0)


@dataclass
class SweepResult:
    out_dir: Path
    results_path: Path
    finished: int
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[tuple[str, int]] = field(default_factory=list)  # (text, times raised)
    wall_s: float = 0.0


def load_spec(
    path: str | Path, overrides: list[str] | None = None
) -> tuple[SweepSpec, list[SweepRun]]:
    path = Path(path)
    spec = validate(SweepSpec, load_yaml(path), source=str(path))
    base = spec.base
    if isinstance(base, str):
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        base = load_yaml(base_path)
    base = apply_overrides(base, overrides or [])
    return spec, expand(spec, base, source=str(path))


def expand(spec: SweepSpec, base: dict[str, Any], source: str = "sweep") -> list[SweepRun]:
    """All runs of a spec: the grid crossed with the explicit points (either may be empty)."""
    keys = list(spec.grid)
    grid = [
        dict(zip(keys, values, strict=True)) for values in itertools.product(*spec.grid.values())
    ]
    points = spec.points or [{}]
    runs, seen = [], set()
    for point in points:
        # A point may name its run ("name: pretrain-beauty"), e.g. so another point can
        # refer to it; grid coordinates are appended.
        point = dict(point)
        label = point.pop("name", None)
        for cell in grid:
            coords = {**point, **cell}
            data = apply_overrides(base, [f"{k}={json.dumps(v)}" for k, v in coords.items()])
            if label is None:
                name = run_name(spec.name, coords)
            else:
                name = "-".join([str(label), run_name("", cell)]) if cell else str(label)
            if name in seen:
                raise RecscaleError(f"{source}: two points give the same run {name!r}")
            seen.add(name)
            cfg = load_run_config(base=merge(data, {"name": name}))
            runs.append(SweepRun(name, coords, cfg))
    if not runs:
        raise RecscaleError(f"{source}: the sweep has no runs (give grid and/or points)")
    return runs


def run_name(sweep: str, coords: dict[str, Any]) -> str:
    """``{"model.layers": 4, "model.dim": 64}`` -> ``layers4-dim64`` (sweep name if no coords)."""
    if not coords:
        return sweep
    parts = [f"{key.rsplit('.', 1)[-1]}{value}" for key, value in coords.items()]
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "-".join(parts))


def run_sweep(
    spec_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    executor: str = "local",
    options: ExecutorOptions | None = None,
    progress: bool = True,
) -> SweepResult:
    """Run (or resume) every run of a sweep, then write its results table.

    Any number of processes may run one sweep directory at once: each run is trained by
    whichever claims it first, and every process writes the same results table once all
    runs are finished or failed. ``executor`` is a name in :data:`EXECUTORS`.
    """
    started = time.time()
    spec, runs = load_spec(spec_path, overrides)
    out = Path(out_dir) if out_dir is not None else Path("runs") / spec.name
    (out / "runs").mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "spec.yaml", Path(spec_path).read_text())
    atomic_write_text(out / "command.txt", _command_line())
    options = options or ExecutorOptions()
    options = replace(
        options,
        cpus=spec.resources.cpus if options.cpus is None else options.cpus,
        gpus=spec.resources.gpus if options.gpus is None else options.gpus,
    )
    runner = EXECUTORS.get(executor)(options)
    jobs = [RunJob(r.name, r.config.model_dump(mode="json")) for r in runs]
    done = sum(run_state(out, r.name, started) == FINISHED for r in runs)
    view = make_view(f"sweep {spec.name}") if progress else None
    say = view.say if view is not None else _quiet
    say(f"sweep {spec.name}: {len(runs)} runs, {done} already done, executor {executor}")
    monitor = Monitor(out, [r.config for r in runs], started, view) if view else nullcontext()
    with sweep_logging(say) as said, monitor:
        runner.run(out, jobs, started)
    failed = failures(out, [r.name for r in runs])
    atomic_write_text(out / "failures.json", json.dumps(failed, indent=1))
    table = collect_results(out, runs)
    path = write_results(table, out)
    return SweepResult(
        out,
        path,
        finished=table.height,
        failed=failed,
        warnings=said.repeats(),
        wall_s=time.time() - started,
    )


def collect_results(out: Path, runs: list[SweepRun]) -> pl.DataFrame:
    """One row per finished run: coordinates, scaling facts and final test metrics."""
    rows = []
    quality_cache: dict[str, float | None] = {}
    for run in runs:
        final_path = out / "runs" / run.name / FINAL_JSON
        if not final_path.is_file():
            continue
        record = read_run_record(final_path)
        cfg = run.config
        coords = {
            "run": run.name,
            "backbone": cfg.model_label,
            "layers": cfg.model.layers,
            "dim": cfg.model.dim,
            "heads": cfg.model.heads,
            "max_len": cfg.model.max_len,
            "data_fraction": cfg.data.fraction,
            "seed": cfg.seed,
        }
        row = results_row(record, coords, apen=_train_apen(cfg, quality_cache))
        # Which data, what items are made of and how the split holds them: the cross-data-set
        # fits and the text-feature and cold-item comparisons of the report group by these.
        row.update(
            dataset=cfg.data.label,
            item_features="+".join(cfg.data.item_features) or "id",
            split=cfg.data.split,
        )
        if cfg.task == "ranking":
            r = cfg.ranking
            row.update(ranker=r.ranker, scorer=r.scorer, negative_ratio=r.negative_ratio)
        if cfg.task == "generative":
            g = cfg.generative
            row.update(code_levels=g.levels, codebook_size=g.codebook_size, beam=g.beam)
        rows.append(row)
    return pl.DataFrame(rows) if rows else pl.DataFrame()


def write_results(table: pl.DataFrame, out: Path) -> Path:
    """Write the table as parquet and CSV, each atomically (several workers may write it)."""
    path = out / RESULTS_PARQUET
    atomic_write(path, table.write_parquet)
    atomic_write(out / RESULTS_CSV, table.write_csv)
    return path


def read_results(path: str | Path) -> pl.DataFrame:
    """A results table from a sweep directory, a ``.parquet`` or a ``.csv`` file."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_PARQUET
    if not path.is_file():
        raise RecscaleError(f"no results table at {path} (run `recscale sweep` first)")
    table = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    if table.height == 0:
        raise RecscaleError(f"{path} has no finished runs")
    return table


def _train_apen(cfg: RunConfig, cache: dict[str, float | None]) -> float | None:
    """ApEn of the run's training sequences (same data config -> computed once)."""
    key = cfg.data.model_dump_json() + str(cfg.seed)
    if key not in cache:
        from recscale.data.quality import apen_batch
        from recscale.train.data import prepare_data

        _, split = prepare_data(cfg.data, cfg.seed)
        cache[key] = float(apen_batch(split.train, m=2, r=0.2, last_k=50))
    return cache[key]


def _command_line() -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in ["recscale", *sys.argv[1:]]) + "\n"


def _quiet(message: str) -> None:
    if message.startswith(("warning", "error", "critical")):
        print(message, file=sys.stderr, flush=True)
