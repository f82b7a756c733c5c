"""The cache stage: npz + JSON without pickle, atomic entries, keys that stay put."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from recscale.data.cache import cache_key, load_cached, save_cached
from recscale.data.preprocess import Recipe
from recscale.data.specs import ResolvedFile
from recscale.data.store import read_path


def test_cache_key_is_pinned():
    """A changed key orphans every cached dataset: change it only on purpose (STORE_VERSION)."""
    files = [
        ResolvedFile("interactions", Path("a.txt"), "a" * 64),
        ResolvedFile("times", Path("b.txt"), "b" * 64),
    ]
    options = {"format": "s3rec", "columns": None}
    key = cache_key(files, options, Recipe.build(None, {"min_seq_len": 3}))
    assert key == "7fa30befbac916fd9b1a279a2139f70d59abbe949e2cf1b17c78d7fded5baeae"
    # Only roles and sha256s count, not where the files are.
    moved = [replace(f, path=Path("/elsewhere") / f.path) for f in files]
    assert cache_key(moved, options, Recipe(min_seq_len=3)) == key
    assert cache_key(files, options, Recipe(min_seq_len=3, sort="legacy_unstable")) != key


def test_save_then_load_gives_the_same_dataset(tmp_path, toy):
    save_cached(toy, tmp_path / "entry", extra={"key": "k"})
    back = load_cached(tmp_path / "entry")
    assert back.name == toy.name and back.num_items == toy.num_items
    for key in ("offsets", "items", "user_ids", "item_ids", "timestamps"):
        assert np.array_equal(getattr(back, key), getattr(toy, key)), key
    assert back.ratings is None
    assert json.loads((tmp_path / "entry" / "meta.json").read_text())["key"] == "k"


def test_cache_files_are_npz_and_json_without_pickle(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSCALE_HOME", str(tmp_path / "home"))
    src = tmp_path / "mine.csv"
    src.write_text("user,item,timestamp,rating\nu1,a,3,4.5\nu1,b,1,2\n")
    ds = read_path(src, "csv")
    [folder] = (tmp_path / "home" / "datasets").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == ["data.npz", "meta.json"]
    with np.load(folder / "data.npz", allow_pickle=False) as z:
        assert z["user_ids"].dtype.kind == "U"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["stats"]["interactions"] == 2 and meta["recipe"]["duplicates"] == "keep"
    assert ds.item_ids.tolist() == ["", "a", "b"] and ds.items.tolist() == [2, 1]


def test_refresh_and_damaged_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSCALE_HOME", str(tmp_path / "home"))
    src = tmp_path / "mine.txt"
    src.write_text("1 5\n")
    read_path(src, "sasrec")
    [folder] = (tmp_path / "home" / "datasets").iterdir()
    (folder / "data.npz").write_bytes(b"garbage")
    assert read_path(src, "sasrec").num_interactions == 1  # rebuilt
    assert read_path(src, "sasrec", refresh=True).num_interactions == 1
