"""Item text: one string per item, from a dataset's side files or a user's item table.

MovieLens items (the titles of :mod:`recscale.data.titles`, read here with downloads allowed)
and genres read as ``"<title (year)>. Genres: <g1>, <g2>"``; SASRec's renumbered ML-1M maps
back to MovieIDs first. A user's own CSV or Parquet file gives text from any columns
(``data.text_path``, ``data.text_columns``, keyed by ``data.text_id``), joined as
``"<column>: <value>"`` so the encoder sees which field is which. Texts are aligned with a
dataset's item index: row 0 (padding) and items without text are ``""``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from recscale.data.attributes import item_attributes
from recscale.data.catalogue import get_spec
from recscale.data.dataset import SequenceDataset
from recscale.data.sources import read_side
from recscale.data.titles import TITLES
from recscale.errors import RecscaleError


def registered_item_text(name: str, data_dir: str | Path | None = None) -> dict[str, str]:
    """Raw item id -> ``"<title>. Genres: ..."`` of registered dataset ``name``."""
    if name not in TITLES:
        raise RecscaleError(
            f"dataset {name!r} has no item text; datasets with text: {', '.join(TITLES.names())}"
            " (or give your own item table: data.text_path)"
        )
    titles = read_side(get_spec(name), TITLES.get(name), data_dir, allow_download=True)
    genres = item_attributes(name, data_dir)
    return {
        raw: f"{title}. Genres: {', '.join(genres[raw])}" if genres.get(raw) else title
        for raw, title in titles.items()
    }


def table_item_text(
    path: str | Path, id_column: str, columns: Sequence[str] = ()
) -> dict[str, str]:
    """Raw item id -> text from a CSV or Parquet item table; ``columns`` empty: every other
    column, in file order."""
    path = Path(path)
    if not path.is_file():
        raise RecscaleError(f"data.text_path: no such file {path}")
    try:
        frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RecscaleError(f"{path}: cannot read as {path.suffix or 'CSV'} ({exc})") from None
    wanted = [id_column, *columns]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise RecscaleError(f"{path}: no column(s) {missing}; columns: {frame.columns}")
    text_columns = list(columns) or [c for c in frame.columns if c != id_column]
    if not text_columns:
        raise RecscaleError(f"{path}: only the id column {id_column!r}; no text to read")
    frame = frame.select(pl.col(id_column).cast(pl.Utf8), *[pl.col(c) for c in text_columns])
    out = {}
    for row in frame.iter_rows():
        parts = [f"{c}: {v}" for c, v in zip(text_columns, row[1:], strict=True) if v is not None]
        out[row[0]] = ". ".join(parts)
    return out


def aligned_texts(ds: SequenceDataset, by_raw_id: dict[str, str]) -> list[str]:
    """Texts in ``ds``'s item index order (``[num_items + 1]``; "" = padding or no text)."""
    return [""] + [by_raw_id.get(str(raw), "") for raw in ds.item_ids[1:]]
