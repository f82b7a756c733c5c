"""Item titles: the side files item attributes read, found by the same resolver."""

from __future__ import annotations

import zipfile
from dataclasses import replace

import pytest

from recscale.data import sources
from recscale.data.titles import TITLES, item_titles

from .conftest import make_dataset


def _named(name: str):
    return replace(make_dataset([[1, 2]]), name=name)


def test_titles_come_from_data_dir_first(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSCALE_DATA_MIRROR", raising=False)
    (tmp_path / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995\n2|GoldenEye (1995)|x\n")
    titles = item_titles(_named("ml-100k"), data_dir=tmp_path)
    assert titles == {"1": "Toy Story (1995)", "2": "GoldenEye (1995)"}


def test_titles_come_from_the_download_cache_and_never_download(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSCALE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("RECSCALE_HOME", str(tmp_path / "home"))

    def no_download(*args, **kwargs):
        raise AssertionError("titles must not start a download")

    monkeypatch.setattr(sources, "download", no_download)
    assert item_titles(_named("ml-1m")) == {}  # nothing cached: no titles, no download
    cache = tmp_path / "home" / "downloads" / "ml-1m"
    cache.mkdir(parents=True)
    with zipfile.ZipFile(cache / "ml-1m.zip", "w") as zf:
        zf.writestr("ml-1m/movies.dat", "1::Toy Story (1995)::Animation\n")
    assert item_titles(_named("ml-1m")) == {"1": "Toy Story (1995)"}


def test_datasets_without_titles_give_none():
    assert set(TITLES) == {"ml-1m", "ml-1m-sasrec", "ml-100k"}
    assert item_titles(_named("toy")) == {}
    assert item_titles(_named("ml-1m+ml-100k")) == {}


@pytest.mark.integration
def test_item_titles_from_the_mirror():
    from recscale.data.store import load_dataset

    ds = load_dataset("ml-1m-sasrec")
    titles = item_titles(ds)
    assert len(titles) == 3_416
    assert titles[ds.item_ids[1]] == "Raiders of the Lost Ark (1981)"  # SASRec id 1 = MovieID 1198
    assert item_titles(load_dataset("lastfm")) == {}
    assert item_titles(_named("ml-100k"))["1"] == "Toy Story (1995)"
