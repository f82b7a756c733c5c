"""``recscale train / evaluate / tasks / recommend``: one run at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from recscale.cli.apps import app
from recscale.cli.output import AsJson, Overrides, console, kv_table, print_json
from recscale.errors import RecscaleError


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Run config YAML")],
    overrides: Overrides = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<name>)")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from the run directory's last checkpoint")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(help="Check the config and the files it names, print it resolved, stop"),
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Train one model; the run directory holds config, metrics, checkpoints and scaling facts."""
    from recscale.train import load_run_config
    from recscale.train import train as train_run
    from recscale.train.config import check_run_inputs

    cfg = load_run_config(config, overrides or [])
    check_run_inputs(cfg, str(config))
    run_dir = out or Path("runs") / (cfg.name or config.stem)
    if run_dir.exists() and not run_dir.is_dir():
        raise RecscaleError(f"--out {run_dir}: exists and is not a directory")
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        raise RecscaleError(
            f"{run_dir} already holds a run; pass --resume to continue it or --out elsewhere"
        )
    if dry_run:
        print_json(cfg.model_dump(mode="json"))
        return
    result = train_run(cfg, run_dir, resume=resume)
    if "failure" in result.final:
        raise RecscaleError(f"{run_dir}: {result.final['failure']} (recorded in final.json)")
    if as_json:
        print_json(result.final)
    else:
        console.print(
            kv_table(
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
        str | None, typer.Option(help="Evaluation protocol (`recscale choices protocols`)")
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
        print_json(result)
    elif "metrics" in result:
        console.print(
            kv_table(f"{run_dir} ({result['protocol']}, {result['split']})", result["metrics"])
        )
    else:
        print_json(result)


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
        print_json(rows)
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
        print_json(recs)
        return
    table = Table(title=f"top {k} for user {user}")
    for col in ("rank", "item", "title", "score"):
        table.add_column(col)
    for rec in recs:
        table.add_row(str(rec["rank"]), rec["item"], rec["title"] or "", f"{rec['score']:.4f}")
    console.print(table)
