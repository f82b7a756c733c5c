"""``recscale choices [KIND]``: every list of names a config or option accepts, read from
the registry that validates it (so help texts never drift from what the code accepts)."""

from __future__ import annotations

from importlib import import_module
from typing import Annotated, Any

import typer
from rich.table import Table

from recscale.cli.apps import app
from recscale.cli.output import AsJson, console, print_json
from recscale.errors import RecscaleError

# kind -> (module, registry): imported only when asked, so --help stays fast.
REGISTRIES = {
    "backbones": ("recscale.models", "ENCODERS"),
    "rankers": ("recscale.models", "RANKERS"),
    "scorers": ("recscale.models", "SCORERS"),
    "datasets": ("recscale.data", "DATASETS"),
    "formats": ("recscale.data", "READERS"),
    "protocols": ("recscale.eval.protocols", "PROTOCOLS"),
    "losses": ("recscale.train.losses", "LOSSES"),
    "splits": ("recscale.train.data", "SPLITS"),
    "laws": ("recscale.scaling.laws", "LAWS"),
    "tasks": ("recscale.eval.tasks", "TASKS"),
    "executors": ("recscale.scaling.executors", "EXECUTORS"),
}


def registry_of(kind: str):
    if kind not in REGISTRIES:
        raise RecscaleError(f"unknown kind {kind!r}; allowed: {', '.join(REGISTRIES)}")
    module, name = REGISTRIES[kind]
    return getattr(import_module(module), name)


def describe(entry: Any) -> str:
    # a law says what it is by its formula; the rest by a description or a docstring
    text = (
        getattr(entry, "description", None)
        or getattr(entry, "formula", None)
        or getattr(entry, "__doc__", None)
        or ""
    )
    return text.strip().splitlines()[0] if text.strip() else ""


@app.command()
def choices(
    kind: Annotated[str | None, typer.Argument(help=", ".join(REGISTRIES))] = None,
    as_json: AsJson = False,
) -> None:
    """The names each registry accepts: backbones, datasets, formats, protocols, losses, ..."""
    kinds = [kind] if kind is not None else list(REGISTRIES)
    rows = {k: {name: describe(registry_of(k).get(name)) for name in registry_of(k)} for k in kinds}
    if as_json:
        print_json(rows)
        return
    for k, entries in rows.items():
        table = Table(title=k)
        table.add_column("name")
        table.add_column("what it is")
        for name, text in entries.items():
            table.add_row(name, text)
        console.print(table)
