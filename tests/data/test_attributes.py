"""Item side information read from the real side files, and the feature table built from it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recscale.data.attributes import ATTRIBUTES, _movies_dat, item_attributes, item_features
from recscale.data.merge import merge_domains
from recscale.data.store import load_dataset
from recscale.errors import RecscaleError
from tests.data.conftest import make_dataset


def decode(features, row: int) -> set[str]:
    return {features.names[k - 1] for k in features.table[row] if k}


def test_real_side_files_give_the_known_attributes(mirror):
    assert item_attributes("ml-100k")["1"] == ["Animation", "Children's", "Comedy"]
    assert item_attributes("ml-1m")["356"] == ["Comedy", "Romance", "War"]
    # SASRec's item 1 is MovieID 1198 (sas_to_original_items.txt).
    assert item_attributes("ml-1m-sasrec")["1"] == ["Action", "Adventure"]
    beauty = item_attributes("amazon-beauty")
    assert beauty["4"] == ["1", "2", "3"]
    assert len(beauty) == 12_101


def test_feature_table_of_a_real_dataset_decodes_to_each_items_genres(mirror):
    ds = load_dataset("ml-100k")
    features = item_features(ds, ["attributes"])
    genres = item_attributes("ml-100k")
    assert features.table.shape == (ds.num_items + 1, max(len(g) for g in genres.values()))
    assert not features.table[0].any()
    for row in (1, 500, ds.num_items):
        assert decode(features, row) == {f"attr:{g}" for g in genres[ds.item_ids[row]]}
    assert features.vocab_size == len({g for gs in genres.values() for g in gs})


def test_merged_domains_keep_attribute_namespaces_apart_and_add_the_domain(mirror):
    lastfm, movies = load_dataset("lastfm"), load_dataset("ml-100k")
    merged = merge_domains([lastfm, movies])
    features = item_features(merged, ["attributes", "domain"])
    first_movie = lastfm.num_items + 1
    raw = item_attributes("lastfm")[str(lastfm.item_ids[1])]
    assert decode(features, 1) == {f"lastfm:{a}" for a in raw} | {"domain:lastfm"}
    movie_genres = item_attributes("ml-100k")[str(movies.item_ids[1])]
    assert decode(features, first_movie) == {f"ml-100k:{g}" for g in movie_genres} | {
        "domain:ml-100k"
    }


def test_what_cannot_be_built_is_refused_with_the_reason(tmp_path, mirror):
    toy = make_dataset([[1, 2, 3]])
    with pytest.raises(RecscaleError, match=r"no item attributes.*ml-100k"):
        item_features(toy, ["attributes"])
    with pytest.raises(RecscaleError, match="a\\+b"):
        item_features(toy, ["domain"])
    with pytest.raises(RecscaleError, match="unknown kind"):
        item_features(toy, ["colour"])
    bad = tmp_path / "movies.dat"
    bad.write_text("1::Toy Story (1995)::Animation\n2::no genres here\n")
    with pytest.raises(RecscaleError, match=r"movies\.dat:2"):
        _movies_dat([bad])
    assert "amazon-toys" in ATTRIBUTES


def test_items_without_attributes_get_an_empty_row():
    ds = replace(make_dataset([[1, 2]]), name="ml-100k", item_ids=np.array(["", "1", "99999"]))
    features = item_features(ds, ["attributes"])
    assert decode(features, 1) == {"attr:Animation", "attr:Children's", "attr:Comedy"}
    assert not features.table[2].any()
