"""The ``recscale`` command: parse arguments, call one library function, print the result.

User errors (:class:`RecscaleError`) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from recscale.errors import RecscaleError

app = typer.Typer(
    help="Large sequential recommendation models and their scaling laws.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(help="Datasets: list, prepare, inspect.", no_args_is_help=True)
model_app = typer.Typer(help="Model configurations and their size.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
console = Console()

Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key: key.sub=value")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
Where = Annotated[
    list[str] | None,
    typer.Option("--where", help="Only runs with column=value (repeatable), e.g. layers=2"),
]


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=1, default=_jsonable))


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def _kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(str(key), str(value))
    return table


# ---------------------------------------------------------------- data


@data_app.command("list")
def data_list(as_json: AsJson = False) -> None:
    """Registered datasets, their source and published size."""
    from recscale.data import list_datasets

    specs = list_datasets()
    if as_json:
        _print_json(specs)
        return
    table = Table(title="datasets")
    for col in ("name", "users", "items", "interactions", "description"):
        table.add_column(col)
    for spec in specs:
        table.add_row(
            *(
                f"{spec.get(c):,}" if isinstance(spec.get(c), int) else str(spec.get(c) or "")
                for c in ("name", "users", "items", "interactions", "description")
            )
        )
    console.print(table)


@data_app.command("prepare")
def data_prepare(
    name: str,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory holding the dataset's files")
    ] = None,
    refresh: Annotated[bool, typer.Option(help="Rebuild the cached canonical dataset")] = False,
) -> None:
    """Find (or download) a dataset, preprocess it, cache it, and check its statistics."""
    from recscale.data import dataset_statistics, load_dataset

    ds = load_dataset(name, data_dir=data_dir, refresh=refresh)
    console.print(_kv_table(f"{name} (prepared)", _flat_stats(dataset_statistics(ds))))


@data_app.command("stats")
def data_stats(
    name_or_path: str,
    fmt: Annotated[
        str | None, typer.Option("--format", help="sasrec, s3rec, recbole, csv, parquet")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory holding the dataset's files")
    ] = None,
    quality: Annotated[
        bool, typer.Option(help="Also compute ApEn, entropy and compression")
    ] = True,
    as_json: AsJson = False,
) -> None:
    """Statistics of a registered dataset or of your own file."""
    from recscale.data import data_quality, dataset_statistics, load_dataset, read_path

    if fmt is not None or Path(name_or_path).exists():
        if fmt is None:
            raise RecscaleError(
                f"{name_or_path} is a file: say its --format (sasrec, s3rec, recbole, csv, parquet)"
            )
        ds = read_path(name_or_path, fmt)
    else:
        ds = load_dataset(name_or_path, data_dir=data_dir)
    stats = dataset_statistics(ds)
    if quality:
        stats["quality"] = data_quality(ds)
    if as_json:
        _print_json(stats)
    else:
        console.print(_kv_table(ds.name, _flat_stats(stats)))


def _flat_stats(stats: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in stats.items():
        if isinstance(value, dict):
            out.update(_flat_stats(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


# ---------------------------------------------------------------- models


@model_app.command("size")
def model_size(
    config_or_preset: str,
    items: Annotated[int, typer.Option(help="Item catalogue size")] = 3416,
    seq_len: Annotated[
        int | None, typer.Option(help="Sequence length (default: the config's max_len)")
    ] = None,
    overrides: Overrides = None,
    as_json: AsJson = False,
) -> None:
    """Layers, width, parameters and FLOPs per token of a model config or preset."""
    from recscale.models import describe_size

    cfg = _model_config(config_or_preset, overrides or [])
    info = describe_size(cfg, items, seq_len or cfg.max_len)
    if as_json:
        _print_json(info)
    else:
        console.print(_kv_table(config_or_preset, info))


@model_app.command("presets")
def model_presets(as_json: AsJson = False) -> None:
    """Named model presets (size ladders and paper configurations)."""
    from recscale.models import describe_size, preset, preset_names

    rows = []
    for name in preset_names():
        cfg = preset(name)
        info = describe_size(cfg, 3416, cfg.max_len)
        rows.append(
            {
                "preset": name,
                **{
                    k: info[k]
                    for k in ("backbone", "layers", "dim", "heads", "non_embedding_params")
                },
            }
        )
    if as_json:
        _print_json(rows)
        return
    table = Table(title="presets (non-embedding params at 3,416 items)")
    for col in rows[0] if rows else []:
        table.add_column(col)
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    console.print(table)


def _model_config(config_or_preset: str, overrides: list[str]):
    from recscale.config import apply_overrides, load_yaml, validate
    from recscale.models import ModelConfig, preset

    path = Path(config_or_preset)
    if path.suffix in (".yaml", ".yml") or path.exists():
        data = load_yaml(path)
        data = data.get("model", data)
    else:
        data = preset(config_or_preset).model_dump()
    return validate(ModelConfig, apply_overrides(data, overrides), source=config_or_preset)


# ---------------------------------------------------------------- train / evaluate


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Run config YAML")],
    overrides: Overrides = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<name>)")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the run directory's last checkpoint")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Train one model; the run directory holds config, metrics, checkpoints and scaling facts."""
    from recscale.train import load_run_config
    from recscale.train import train as train_run

    cfg = load_run_config(config, overrides or [])
    run_dir = out or Path("runs") / (cfg.name or config.stem)
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise RecscaleError(
            f"{run_dir} already holds a run; pass --resume to continue it or --out elsewhere"
        )
    result = train_run(cfg, run_dir, resume=resume)
    if as_json:
        _print_json(result.final)
    else:
        console.print(
            _kv_table(
                f"{result.final['run']}: test ({result.final['protocol']}, "
                f"{result.final['selection']})",
                result.final["test"],
            )
        )
        console.print(f"run directory: {run_dir}")


@app.command()
def evaluate(
    run_dir: Path,
    protocol: Annotated[
        str | None, typer.Option(help="full, full-no-exclude, sampled-100, sampled-N")
    ] = None,
    split: Annotated[str, typer.Option(help="test or valid")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best or last")] = "best",
    task: Annotated[
        str | None, typer.Option(help="A challenge task (see `recscale tasks`)")
    ] = None,
    task_set: Annotated[
        list[str] | None, typer.Option("--task-set", help="Task option key=value")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Evaluate a finished run under a named protocol, or on a challenge task."""
    if task is not None:
        from recscale.train.runs import run_task

        result = run_task(run_dir, task, options=task_set or [], protocol=protocol)
    else:
        from recscale.train.runs import evaluate_run

        result = evaluate_run(run_dir, protocol=protocol, split=split, checkpoint=checkpoint)
    if as_json:
        _print_json(result)
    elif "metrics" in result:
        console.print(
            _kv_table(f"{run_dir} ({result['protocol']}, {result['split']})", result["metrics"])
        )
    else:
        _print_json(result)


@app.command()
def tasks(as_json: AsJson = False) -> None:
    """The challenge tasks `recscale evaluate --task` runs, with their options."""
    from recscale.eval.tasks import TASKS

    rows = {
        name: {
            "description": TASKS.get(name).description,
            "options": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in TASKS.get(name).defaults.items()
            },
        }
        for name in TASKS
    }
    if as_json:
        _print_json(rows)
        return
    table = Table(title="challenge tasks (recscale evaluate RUN --task NAME --task-set k=v)")
    for col in ("task", "what it measures", "options (defaults)"):
        table.add_column(col)
    for name, row in rows.items():
        opts = ", ".join(f"{k}={_fmt_option(v)}" for k, v in row["options"].items())
        table.add_row(name, row["description"], opts or "-")
    console.print(table)


def _fmt_option(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


@app.command()
def recommend(
    run_dir: Path,
    user: Annotated[str, typer.Option(help="Raw user id, as in the source data")],
    k: Annotated[int, typer.Option("-k", help="How many items")] = 10,
    as_json: AsJson = False,
) -> None:
    """Top-k items for one user, as raw item ids (with titles where the dataset has them)."""
    from recscale.train.runs import recommend as recommend_items

    recs = recommend_items(run_dir, user, k)
    if as_json:
        _print_json(recs)
        return
    table = Table(title=f"top {k} for user {user}")
    for col in ("rank", "item", "title", "score"):
        table.add_column(col)
    for rec in recs:
        table.add_row(str(rec["rank"]), rec["item"], rec["title"] or "", f"{rec['score']:.4f}")
    console.print(table)


# ---------------------------------------------------------------- scaling


@app.command()
def sweep(
    spec: Path,
    out: Annotated[
        Path | None, typer.Option(help="Sweep directory (default runs/<spec name>)")
    ] = None,
    jobs: Annotated[int, typer.Option(help="Runs in parallel (local processes)")] = 1,
    overrides: Overrides = None,
) -> None:
    """Run every point of a sweep (resumable), then write its results table."""
    from recscale.scaling.sweep import run_sweep

    result = run_sweep(spec, out_dir=out, jobs=jobs, overrides=overrides or [])
    console.print(
        f"results: {result.results_path}  ({result.finished} finished, {len(result.failed)} failed)"
    )
    for name, reason in result.failed.items():
        console.print(f"  failed: {name}: {reason}")


@app.command()
def fit(
    results: Path,
    law: Annotated[
        str, typer.Option(help="power_n, power_d, joint, log_compute, performance_law")
    ] = "power_n",
    metric: Annotated[str, typer.Option(help="Column to fit (loss, hr@10, ndcg@10, ...)")] = "loss",
    holdout: Annotated[
        str | None, typer.Option(help="largest:K, or run names separated by commas")
    ] = None,
    boot: Annotated[int, typer.Option(help="Bootstrap resamples for intervals")] = 200,
    where: Where = None,
    as_json: AsJson = False,
) -> None:
    """Fit a law to a results table; with --holdout, predict and score the held-out runs."""
    from recscale.scaling.api import fit_results

    out = fit_results(
        results, law=law, metric=metric, holdout=holdout, n_boot=boot, where=where or []
    )
    if as_json:
        _print_json(out)
    else:
        console.print(_kv_table(f"{law} on {metric}", _flat_stats(out)))


@app.command()
def predict(
    results: Path,
    law: Annotated[str, typer.Option(help="Law to fit (see `recscale fit`)")] = "power_n",
    metric: Annotated[str, typer.Option(help="Column to fit")] = "loss",
    params: Annotated[float | None, typer.Option(help="Non-embedding parameters")] = None,
    tokens: Annotated[float | None, typer.Option(help="Training tokens")] = None,
    compute: Annotated[float | None, typer.Option(help="Training FLOPs")] = None,
    layers: Annotated[float | None, typer.Option(help="Layers (performance law)")] = None,
    dim: Annotated[float | None, typer.Option(help="Embedding size (performance law)")] = None,
    where: Where = None,
    as_json: AsJson = False,
) -> None:
    """What would a model of this size score? Fits the law, then predicts with an interval."""
    from recscale.scaling.api import predict_point

    point = {
        k: v
        for k, v in dict(
            non_embedding_params=params, tokens=tokens, compute=compute, layers=layers, dim=dim
        ).items()
        if v is not None
    }
    out = predict_point(results, law=law, metric=metric, point=point, where=where or [])
    if as_json:
        _print_json(out)
    else:
        console.print(_kv_table(f"{law} prediction of {metric}", _flat_stats(out)))


@app.command()
def report(
    sweep_dir: Path,
    holdout: Annotated[
        str | None,
        typer.Option(help="Which runs the laws predict instead of fit (default: the spec's)"),
    ] = None,
    task: Annotated[
        list[str] | None,
        typer.Option("--task", help="Also evaluate every run on this challenge task"),
    ] = None,
) -> None:
    """Write the sweep's HTML report (plots embedded) and its Markdown twin."""
    from recscale.scaling.api import report_sweep

    html, md = report_sweep(sweep_dir, holdout=holdout, tasks=task)
    console.print(f"report: {html}\nmarkdown: {md}")


@app.command()
def demo(
    spec: Annotated[Path, typer.Option(help="Sweep spec")] = Path("configs/sweeps/demo.yaml"),
    out: Annotated[Path, typer.Option(help="Sweep directory")] = Path("runs/demo"),
) -> None:
    """The main job: a small scaling study on real data, ending in a report."""
    from recscale.scaling.api import demo as run_demo

    html = run_demo(spec, out)
    console.print(f"report: {html}")


def main() -> None:
    try:
        app()
    except RecscaleError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
