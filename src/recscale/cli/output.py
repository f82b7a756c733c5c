"""How the commands print: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()

Overrides = Annotated[
    list[str] | None, typer.Option("--set", help="Override a config key: key.sub=value")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
Where = Annotated[
    list[str] | None,
    typer.Option("--where", help="Only runs with column=value (repeatable), e.g. layers=2"),
]


def print_summary(summary: Any) -> None:
    """A sweep's :class:`~recscale.scaling.summary.SweepSummary`, as the report opens with it."""
    console.rule(f"[bold]{summary.headline()}")
    for line in summary.lines()[1:]:
        styled = line.replace("OUTSIDE the interval", "[bold red]OUTSIDE the interval[/]")
        styled = styled.replace("inside the interval", "[green]inside the interval[/]")
        console.print(styled if line.startswith(" ") else f"[bold]{line}[/]", highlight=False)
    for text, times in summary.warnings:
        console.print(f"[yellow]{text}[/] (said once; raised {times}x)", highlight=False)
    if summary.report:
        console.print(f"report: {summary.report}")


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=1, default=jsonable))


def jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    for key, value in rows.items():
        if isinstance(value, float):
            value = f"{value:.6g}"
        elif isinstance(value, int):
            value = f"{value:,}"
        table.add_row(str(key), str(value))
    return table


def flat_stats(stats: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in stats.items():
        if isinstance(value, dict):
            out.update(flat_stats(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
