"""Loading, the stages composed: cache reuse, errors; real datasets with exact published stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recscale.data import readers, store
from recscale.data.stats import dataset_statistics
from recscale.data.store import load_dataset, read_path
from recscale.errors import RecscaleError


def _boom(*args, **kwargs):
    raise AssertionError("the reader ran although the cache should have been used")


def assert_same(a, b):
    assert a.name == b.name and a.num_items == b.num_items and a.recipe == b.recipe
    for key in ("offsets", "items", "user_ids", "item_ids", "timestamps", "ratings"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None and y is None) or np.array_equal(x, y), key


def test_read_path_caches_and_second_load_skips_reader(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSCALE_HOME", str(tmp_path / "home"))
    src = tmp_path / "mine.txt"
    src.write_text("1 5\n1 6\n2 5\n")
    first = read_path(src, "sasrec")
    monkeypatch.setattr(readers, "read_interactions", _boom)
    second = read_path(src, "sasrec")
    assert_same(first, second)
    # Another recipe is another key, so it must read again.
    with pytest.raises(AssertionError, match="reader ran"):
        read_path(src, "sasrec", recipe_overrides={"min_seq_len": 2})
    # A changed source file is another key too.
    src.write_text("1 5\n1 7\n")
    with pytest.raises(AssertionError, match="reader ran"):
        read_path(src, "sasrec")


def test_read_path_errors(tmp_path):
    with pytest.raises(RecscaleError, match="no such file"):
        read_path(tmp_path / "none.txt", "sasrec")
    with pytest.raises(RecscaleError, match="unknown data format"):
        read_path(tmp_path / "none.txt", "nope")


def test_unknown_dataset():
    with pytest.raises(RecscaleError, match=r"unknown dataset 'ml-2m'; known: .*ml-1m"):
        load_dataset("ml-2m")


def test_missing_dataset_without_network_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSCALE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("recscale.data.sources.download", _no_network)
    with pytest.raises(RecscaleError) as err:
        load_dataset("ml-20m", data_dir=tmp_path)
    msg = str(err.value)
    assert (
        "ml-20m/ratings.csv" in msg and "files.grouplens.org/datasets/movielens/ml-20m.zip" in msg
    )


def _no_network(url, *a, **k):
    raise RecscaleError(f"cannot download {url}: no network in tests")


# ---------------------------------------------------------------- real datasets

PUBLISHED = {
    "ml-1m-sasrec": (6_040, 3_416, 999_611),
    "ml-100k": (943, 1_682, 100_000),
    "amazon-beauty": (22_363, 12_101, 198_502),
}


@pytest.mark.integration
@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_real_published_statistics(name, monkeypatch):
    ds = load_dataset(name)
    assert (ds.num_users, ds.num_items, ds.num_interactions) == PUBLISHED[name]
    assert ds.recipe["published_check"] == "checked against the published figures"
    monkeypatch.setattr(readers, "read_interactions", _boom)
    assert_same(ds, load_dataset(name))


@pytest.mark.integration
def test_real_ml1m_sasrec_ids_and_lengths():
    ds = load_dataset("ml-1m-sasrec")
    s = dataset_statistics(ds)
    assert s["length_min"] == 18 and s["length_max"] == 2_277 and not s["has_timestamps"]
    assert ds.item_ids[1] == "1" and ds.item_ids[-1] == "3416"  # SASRec ids are kept as they are
    assert ds.sequence(0)[:3].tolist() == [1, 2, 3]


@pytest.mark.integration
def test_real_beauty_has_aligned_timestamps():
    ds = load_dataset("amazon-beauty")
    assert ds.timestamps is not None
    gaps = np.diff(ds.timestamps)
    inside = np.ones(len(gaps), dtype=bool)
    inside[ds.offsets[1:-1] - 1] = False  # ignore user boundaries
    assert (gaps[inside] >= 0).all()


@pytest.mark.integration
def test_real_ml1m_partial_file_is_recorded():
    ds = load_dataset("ml-1m")
    assert (ds.num_users, ds.num_items, ds.num_interactions) == (2_999, 3_615, 487_650)
    assert ds.recipe["sources"][0]["partial"] is True
    assert "partial file" in ds.recipe["published_check"]


@pytest.mark.integration
def test_real_published_mismatch_is_an_error(monkeypatch):
    from dataclasses import replace

    from recscale.data import catalogue

    spec = catalogue.get_spec("lastfm")
    monkeypatch.setitem(
        catalogue.DATASETS._entries,
        "lastfm",
        replace(spec, published=replace(spec.published, users=1)),
    )
    with pytest.raises(RecscaleError, match=r"dataset 'lastfm': .*users 1,090 \(published 1\)"):
        store.load_dataset("lastfm", refresh=True)


@pytest.mark.integration
def test_real_ml1m_raw_stable_sort_reproduces_sasrec_sequences():
    """PROVENANCE.md: items with >= 5 ratings, stable time sort (ties keep file order) = SASRec.

    The partial raw file has users 1-2999; after our chronological sort and keeping only
    SASRec's items, every one of those users' sequences must equal SASRec's exactly.
    """
    import os

    mirror = Path(os.environ["RECSCALE_DATA_MIRROR"]) / "ml-1m" / "sasrec"
    raw, sas = load_dataset("ml-1m"), load_dataset("ml-1m-sasrec")
    item_map = dict(np.loadtxt(mirror / "sas_to_original_items.txt", dtype=str))
    user_map = dict(np.loadtxt(mirror / "sas_to_original_users.txt", dtype=str))
    raw_user = {u: k for k, u in enumerate(raw.user_ids)}
    kept = {item_map[i] for i in sas.item_ids[1:]}
    checked = 0
    for k, sas_user in enumerate(sas.user_ids):
        original = user_map[sas_user]
        if original not in raw_user:
            continue
        movies = raw.item_ids[raw.sequence(raw_user[original])]
        movies = [m for m in movies if m in kept]
        assert movies == [item_map[i] for i in sas.item_ids[sas.sequence(k)]], original
        checked += 1
    assert checked == 2_999
