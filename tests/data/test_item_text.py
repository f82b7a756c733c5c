"""Item text tables: MovieLens titles, years and genres; a user's own CSV or Parquet items."""

from __future__ import annotations

import polars as pl
import pytest

from recscale.data import load_dataset
from recscale.data.item_text import aligned_texts, registered_item_text, table_item_text
from recscale.errors import RecscaleError


@pytest.mark.integration
def test_ml1m_sasrec_items_read_title_year_and_genres():
    ds = load_dataset("ml-1m-sasrec")
    texts = aligned_texts(ds, registered_item_text("ml-1m-sasrec"))
    assert len(texts) == ds.num_items + 1 and texts[0] == ""
    assert all(texts[1:]), "every ML-1M item has a title"
    # SASRec's item 1 is MovieID 1198 (sas_to_original_items.txt).
    assert texts[1] == "Raiders of the Lost Ark (1981). Genres: Action, Adventure"


@pytest.mark.integration
def test_ml100k_items_read_genre_flags():
    text = registered_item_text("ml-100k")["1"]
    assert text.startswith("Toy Story (1995). Genres: ")
    assert "Animation" in text and "Comedy" in text


def test_datasets_without_text_say_which_have_it():
    with pytest.raises(RecscaleError, match=r"no item text.*ml-1m-sasrec.*data\.text_path"):
        registered_item_text("amazon-beauty")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_user_item_table_joins_named_columns(tmp_path, suffix):
    frame = pl.DataFrame(
        {"item": [10, 11], "title": ["Red kettle", "Blue mug"], "brand": ["Acme", None]}
    )
    path = tmp_path / f"items{suffix}"
    frame.write_csv(path) if suffix == ".csv" else frame.write_parquet(path)
    assert table_item_text(path, "item") == {
        "10": "title: Red kettle. brand: Acme",
        "11": "title: Blue mug",
    }
    assert table_item_text(path, "item", ["title"])["10"] == "title: Red kettle"
    with pytest.raises(RecscaleError, match=r"items.*no column\(s\) \['name'\]"):
        table_item_text(path, "item", ["name"])
    with pytest.raises(RecscaleError, match="no such file"):
        table_item_text(tmp_path / "missing.csv", "item")
