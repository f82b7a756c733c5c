"""``recscale sweep / fit / predict / report / demo``: many runs and their laws."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recscale.cli.apps import app
from recscale.cli.output import (
    AsJson,
    Overrides,
    Where,
    console,
    flat_stats,
    kv_table,
    print_json,
    print_summary,
)


@app.command()
def sweep(
    spec: Path,
    out: Annotated[
        Path | None, typer.Option(help="Sweep directory (default runs/<spec name>)")
    ] = None,
    jobs: Annotated[int, typer.Option(help="Local worker processes (--executor local)")] = 1,
    executor: Annotated[
        str, typer.Option(help="Where runs train (`recscale choices executors`)")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address HOST:PORT (--executor ray)")
    ] = None,
    cpus_per_run: Annotated[
        float | None, typer.Option(help="CPUs per run (default: the spec's resources)")
    ] = None,
    gpus_per_run: Annotated[
        float | None, typer.Option(help="GPUs per run (default: the spec's resources)")
    ] = None,
    max_retries: Annotated[
        int, typer.Option(help="Ray: retries of a run whose worker died (resumes it)")
    ] = 3,
    overrides: Overrides = None,
) -> None:
    """Run every point of a sweep (resumable), then write its results table.

    Processes started on one directory (or machines sharing it) split its runs: each once."""
    from recscale.scaling.executors import ExecutorOptions
    from recscale.scaling.sweep import run_sweep

    options = ExecutorOptions(
        jobs=jobs, address=address, cpus=cpus_per_run, gpus=gpus_per_run, max_retries=max_retries
    )
    result = run_sweep(
        spec, out_dir=out, overrides=overrides or [], executor=executor, options=options
    )
    console.print(
        f"results: {result.results_path}  ({result.finished} finished, {len(result.failed)} failed)"
    )
    for name, reason in result.failed.items():
        console.print(f"  failed: {name}: {reason}")


@app.command()
def fit(
    results: Path,
    law: Annotated[str, typer.Option(help="Law to fit (`recscale choices laws`)")] = "power_n",
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
        print_json(out)
    else:
        console.print(kv_table(f"{law} on {metric}", flat_stats(out)))


@app.command()
def predict(
    results: Path,
    law: Annotated[str, typer.Option(help="Law to fit (`recscale choices laws`)")] = "power_n",
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
        print_json(out)
    else:
        console.print(kv_table(f"{law} prediction of {metric}", flat_stats(out)))


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
    from recscale.scaling.summary import read_summary

    _, md = report_sweep(sweep_dir, holdout=holdout, tasks=task)
    print_summary(read_summary(sweep_dir))
    console.print(f"markdown: {md}")


@app.command()
def demo(
    spec: Annotated[Path, typer.Option(help="Sweep spec")] = Path("configs/sweeps/demo.yaml"),
    out: Annotated[Path, typer.Option(help="Sweep directory")] = Path("runs/demo"),
) -> None:
    """The main job: a small scaling study on real data, ending in a report."""
    from recscale.scaling.api import demo as run_demo

    print_summary(run_demo(spec, out))
