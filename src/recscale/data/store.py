"""Loading a dataset, the stages composed in order: resolve -> read -> preprocess -> cache.

1. :mod:`~recscale.data.sources` finds the files the :mod:`~recscale.data.catalogue` declares
   (``load_dataset``) or takes the user's own (``read_path``);
2. :mod:`~recscale.data.readers` parses them into raw interactions;
3. :mod:`~recscale.data.preprocess` applies the recipe, and the result is checked
   against the published figures (:mod:`~recscale.data.stats`);
4. :mod:`~recscale.data.cache` keeps the result, keyed by the files' sha256s, the reader
   options and the recipe, so a second load reads the cache and skips steps 2-3.

Splitting (:mod:`~recscale.data.splits`) comes after, on the loaded dataset.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from recscale.data import readers
from recscale.data.cache import cached
from recscale.data.catalogue import get_spec
from recscale.data.dataset import SequenceDataset
from recscale.data.preprocess import Recipe, preprocess
from recscale.data.sources import resolve_files, resolve_paths
from recscale.data.specs import ResolvedFile
from recscale.data.stats import check_counts, check_published


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    recipe_overrides: dict[str, Any] | None = None,
    refresh: bool = False,
) -> SequenceDataset:
    """Load a registered dataset, preprocessed with its default recipe plus ``recipe_overrides``.

    Files are found as described in :mod:`recscale.data.sources`. The result is cached; a
    second call with the same sources and recipe reads the cache instead of the source.
    With the default recipe, the counts are checked against the published figures (for a
    partial mirror file, against that file's own figures) and a mismatch raises.
    """
    spec = get_spec(name)
    recipe = Recipe.build(spec.recipe, recipe_overrides)
    files = resolve_files(spec, data_dir)
    main = next(f for f in files if f.role == "interactions")
    times = next((f for f in files if f.role == "times"), None)
    default = recipe == Recipe.build(spec.recipe)
    if not default:
        check = "skipped: recipe differs from the dataset default"
    elif main.partial:
        check = (
            f"partial file {main.path.name}: checked against its own counts, not the full dataset"
        )
    else:
        check = "checked against the published figures"

    def build() -> SequenceDataset:
        raw = readers.read_interactions(
            main.path, spec.format, columns=spec.columns, time_file=times.path if times else None
        )
        ds = _with_recipe(preprocess(raw, recipe, name), recipe, files, check)
        if default and main.partial and main.partial_stats is not None:
            check_counts(ds, main.partial_stats, f"dataset {name!r} ({main.path.name})")
        elif default and not main.partial:
            check_published(ds, spec)
        return ds

    options = {"format": spec.format, "columns": spec.columns}
    return cached(name, files, options, recipe, build, refresh)


def read_path(
    path: str | Path,
    format: str,
    columns: dict[str, str | int] | None = None,
    time_file: str | Path | None = None,
    recipe_overrides: dict[str, Any] | None = None,
    refresh: bool = False,
) -> SequenceDataset:
    """Read a user's own file (any format in ``readers.READERS``) into a cached dataset."""
    readers.READERS.get(format)
    files = resolve_paths(path, time_file)
    recipe = Recipe.build(None, recipe_overrides)
    main = files[0]
    times = files[1].path if len(files) > 1 else None
    name = main.path.name.split(".")[0]

    def build() -> SequenceDataset:
        raw = readers.read_interactions(main.path, format, columns=columns, time_file=times)
        return _with_recipe(preprocess(raw, recipe, name), recipe, files, "no published figures")

    return cached(name, files, {"format": format, "columns": columns}, recipe, build, refresh)


def _with_recipe(
    ds: SequenceDataset, recipe: Recipe, files: list[ResolvedFile], check: str
) -> SequenceDataset:
    record = {
        **recipe.model_dump(),
        "sources": [
            {"role": f.role, "file": f.path.name, "sha256": f.sha256, "partial": f.partial}
            for f in files
        ],
        "published_check": check,
    }
    return replace(ds, recipe=record)
