"""``recscale data ...``: list, prepare and inspect datasets."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from recscale.cli.apps import data_app
from recscale.cli.output import AsJson, console, flat_stats, kv_table, print_json
from recscale.errors import RecscaleError


@data_app.command("list")
def data_list(as_json: AsJson = False) -> None:
    """Registered datasets, their source and published size."""
    from recscale.data import list_datasets

    specs = list_datasets()
    if as_json:
        print_json(specs)
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
    console.print(kv_table(f"{name} (prepared)", flat_stats(dataset_statistics(ds))))


class SortMode(StrEnum):  # the values of data.recipe.sort (Recipe.sort)
    stable = "stable"
    legacy_unstable = "legacy_unstable"


@data_app.command("stats")
def data_stats(
    name_or_path: str,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Data format (`recscale choices formats`)")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Directory holding the dataset's files")
    ] = None,
    time_path: Annotated[
        Path | None,
        typer.Option(help="An aligned time file for your own file (s3rec: 'user t1 t2 ...')"),
    ] = None,
    quality: Annotated[
        bool, typer.Option(help="Also compute ApEn, entropy and compression")
    ] = True,
    sort: Annotated[
        SortMode,
        typer.Option(
            help="Chronological sort: stable (ties in file order) or legacy_unstable (the HSTU "
            "code's; also reports the share of leave-one-out targets it changes)"
        ),
    ] = SortMode.stable,
    as_json: AsJson = False,
) -> None:
    """Statistics of a registered dataset or of your own file."""
    from recscale.data import data_quality, dataset_statistics, load_dataset, read_path
    from recscale.data.stats import changed_targets

    def load(mode: str):
        recipe = {"sort": mode}
        if fmt is not None or Path(name_or_path).exists():
            if fmt is None:
                from recscale.data import format_names

                raise RecscaleError(
                    f"{name_or_path} is a file: say its --format ({', '.join(format_names())})"
                )
            return read_path(name_or_path, fmt, time_file=time_path, recipe_overrides=recipe)
        return load_dataset(name_or_path, data_dir=data_dir, recipe_overrides=recipe)

    ds = load(sort.value)
    stats = dataset_statistics(ds)
    stats["sort"] = sort.value
    if sort is not SortMode.stable and ds.timestamps is not None:
        stats.update(changed_targets(load(SortMode.stable.value), ds))
    if quality:
        stats["quality"] = data_quality(ds)
    if as_json:
        print_json(stats)
    else:
        console.print(kv_table(ds.name, flat_stats(stats)))
