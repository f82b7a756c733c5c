"""Stage 4 of loading, the cache: preprocessed datasets as npz + JSON under ``RECSCALE_HOME``.

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from recscale.data.dataset import SequenceDataset
from recscale.data.preprocess import Recipe
from recscale.data.sources import recscale_home
from recscale.data.specs import ResolvedFile
from recscale.data.stats import dataset_statistics

STORE_VERSION = 1
_ARRAYS = ("offsets", "items", "user_ids", "item_ids", "timestamps", "ratings", "item_domains")


# Recipe fields added after entries were cached, with the value that gives the old
# behaviour: left out of the key at that value, so existing entries stay valid.
_LATER_FIELDS = {"sort": "stable"}


def _keyed(recipe: Recipe) -> dict[str, Any]:
    dump = recipe.model_dump()
    return {k: v for k, v in dump.items() if _LATER_FIELDS.get(k, object()) != v}


def cache_key(files: list[ResolvedFile], options: dict[str, Any], recipe: Recipe) -> str:
    """sha256 of the store version, the files' roles and sha256s, reader options and recipe."""
    blob = json.dumps(
        {
            "version": STORE_VERSION,
            "files": [[f.role, f.sha256] for f in files],
            "options": options,
            "recipe": _keyed(recipe),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cached(
    name: str,
    files: list[ResolvedFile],
    options: dict[str, Any],
    recipe: Recipe,
    build: Callable[[], SequenceDataset],
    refresh: bool = False,
) -> SequenceDataset:
    """The cached dataset for these sources, options and recipe; ``build()`` it on a miss.

    A damaged entry counts as a miss; ``refresh`` rebuilds regardless.
    """
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
