"""The canonical store: preprocessed datasets cached as npz + JSON under ``RECSCALE_HOME``.

Layout: ``RECSCALE_HOME/datasets/<name>-<key>/{data.npz, meta.json}`` where ``key`` is
the sha256 of the source files' sha256s, the reader format and options, and the recipe
JSON. ``meta.json`` is written last, so a directory without it is an unfinished write;
both files go through a temporary name and ``os.replace``. Arrays load with
``allow_pickle=False``: raw ids are stored as fixed-width unicode, never objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from recscale.data import readers
from recscale.data.dataset import SequenceDataset
from recscale.data.download import sha256_file
from recscale.data.preprocess import Recipe, preprocess
from recscale.data.sources import ResolvedFile, get_spec, recscale_home, resolve_files
from recscale.data.stats import check_counts, check_published, dataset_statistics
from recscale.errors import RecscaleError

STORE_VERSION = 1
_ARRAYS = ("offsets", "items", "user_ids", "item_ids", "timestamps", "ratings", "item_domains")


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
    options = {"format": spec.format, "columns": spec.columns}
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
        ds = preprocess(raw, recipe, name)
        ds = _with_recipe(ds, recipe, files, check)
        if default and main.partial and main.partial_stats is not None:
            check_counts(ds, main.partial_stats, f"dataset {name!r} ({main.path.name})")
        elif default and not main.partial:
            check_published(ds, spec)
        return ds

    return _cached(name, files, options, recipe, build, refresh)


def read_path(
    path: str | Path,
    format: str,
    columns: dict[str, str | int] | None = None,
    time_file: str | Path | None = None,
    recipe_overrides: dict[str, Any] | None = None,
    refresh: bool = False,
) -> SequenceDataset:
    """Read a user's own file (any format in ``readers.READERS``) into a cached dataset."""
    path = Path(path)
    readers.READERS.get(format)
    if not path.is_file():
        raise RecscaleError(f"{path}: no such file")
    recipe = Recipe.build(None, recipe_overrides)
    files = [ResolvedFile("interactions", path, sha256_file(path))]
    if time_file is not None:
        time_file = Path(time_file)
        if not time_file.is_file():
            raise RecscaleError(f"{time_file}: no such time file")
        files.append(ResolvedFile("times", time_file, sha256_file(time_file)))
    name = path.name.split(".")[0]

    def build() -> SequenceDataset:
        raw = readers.read_interactions(path, format, columns=columns, time_file=time_file)
        return _with_recipe(preprocess(raw, recipe, name), recipe, files, "no published figures")

    return _cached(name, files, {"format": format, "columns": columns}, recipe, build, refresh)


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


def cache_key(files: list[ResolvedFile], options: dict[str, Any], recipe: Recipe) -> str:
    blob = json.dumps(
        {
            "version": STORE_VERSION,
            "files": [[f.role, f.sha256] for f in files],
            "options": options,
            "recipe": recipe.model_dump(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _cached(name, files, options, recipe, build, refresh) -> SequenceDataset:
    key = cache_key(files, options, recipe)
    folder = recscale_home() / "datasets" / f"{name}-{key[:16]}"
    if not refresh and (folder / "meta.json").is_file():
        try:
            return load_cached(folder)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            pass  # a damaged cache entry is rebuilt below
    ds = build()
    save_cached(ds, folder, extra={"key": key, "options": options})
    return ds


def save_cached(ds: SequenceDataset, folder: Path, extra: dict[str, Any] | None = None) -> None:
    """Write ``ds`` to ``folder`` (npz arrays + meta.json), each file atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: getattr(ds, k) for k in _ARRAYS if getattr(ds, k) is not None}
    arrays["user_ids"] = np.asarray(ds.user_ids, dtype=str)
    arrays["item_ids"] = np.asarray(ds.item_ids, dtype=str)
    _atomic(folder / "data.npz", lambda f: np.savez(f, **arrays))
    meta = {
        "name": ds.name,
        "num_items": ds.num_items,
        "domain_names": list(ds.domain_names),
        "recipe": ds.recipe,
        "stats": dataset_statistics(ds),
        "store_version": STORE_VERSION,
        **(extra or {}),
    }
    text = json.dumps(meta, indent=2, sort_keys=True)
    _atomic(folder / "meta.json", lambda f: f.write(text.encode()))


def load_cached(folder: Path) -> SequenceDataset:
    """Read a dataset written by :func:`save_cached` (no pickle)."""
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("store_version") != STORE_VERSION:
        raise ValueError("old store version")
    with np.load(folder / "data.npz", allow_pickle=False) as z:
        arrays = {k: z[k] for k in _ARRAYS if k in z.files}
    return SequenceDataset(
        name=meta["name"],
        num_items=meta["num_items"],
        domain_names=tuple(meta["domain_names"]),
        recipe=meta["recipe"],
        **arrays,
    )


def _atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
