"""Line formats: one interaction (or one user) per text line.

- ``sasrec``: ``user item`` per line, chronological per user (SASRec / BERT4Rec).
- ``s3rec``: ``user i1 i2 ...`` per line, chronological (S3-Rec); an optional time file
  ``user t1 t2 ...`` lines up position by position with it.
- ``movielens-dat``: ``UserID::MovieID::Rating::Timestamp`` (ML-1M / ML-10M ``ratings.dat``).
- ``ml-100k``: ``user\\titem\\trating\\ttimestamp`` (``u.data``).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from recscale.data.readers_base import (
    READERS,
    Interactions,
    finish,
    fixed_fields,
    positive,
    read_lines,
    split_fields,
    to_int,
)
from recscale.errors import RecscaleError


@READERS.register("sasrec")
def read_sasrec(path: Path, columns=None, time_file=None) -> Interactions:
    """``user item`` lines (SASRec ``ml-1m.txt``), chronological per user, no timestamps."""
    expected = "'user item' (two integers separated by whitespace)"
    frame = split_fields(path, read_lines(path), None, 2, expected)
    frame = frame.select(
        "line",
        pl.col("fields").list.get(0).alias("user"),
        pl.col("fields").list.get(1).alias("item"),
    )
    frame = to_int(
        path, to_int(path, frame, "user", "user id", expected), "item", "item id", expected
    )
    positive(path, frame, "user", "user id", expected)
    positive(path, frame, "item", "item id", expected)
    # One line per interaction: a user on many lines is the format, not a mistake.
    return Interactions(finish(frame), str(path), ordered=True)


def _s3rec_rows(path: Path, what: str, expected: str) -> pl.DataFrame:
    """One row per (line, position): columns line, user, pos, value (string)."""
    frame = split_fields(path, read_lines(path), None, None, expected)
    frame = frame.select(
        "line",
        pl.col("fields").list.first().alias("user"),
        pl.col("fields").list.slice(1).alias("values"),
    )
    frame = to_int(path, frame, "user", "user id", expected)
    positive(path, frame, "user", "user id", expected)
    repeated = frame.filter(pl.col("user").is_duplicated())
    if repeated.height:
        # One line per user: a second line would silently split or reorder the sequence.
        user = repeated["user"][0]
        lines = repeated.filter(pl.col("user") == user)["line"]
        raise RecscaleError(
            f"{path}:{lines[1]}: user {user} already has a line ({path}:{lines[0]}); "
            f"expected {expected}, one line per user"
        )
    frame = frame.with_columns(pl.int_ranges(0, pl.col("values").list.len()).alias("pos"))
    return frame.explode(["values", "pos"]).rename({"values": what})


@READERS.register("s3rec")
def read_s3rec(path: Path, columns=None, time_file: Path | None = None) -> Interactions:
    """``user i1 i2 ...`` lines (S3-Rec), chronological.

    ``time_file`` (``user t1 t2 ...``) lines up with it position by position.
    """
    expected = "'user item1 item2 ...' (integers separated by whitespace)"
    frame = to_int(path, _s3rec_rows(path, "item", expected), "item", "item id", expected)
    positive(path, frame, "item", "item id", expected)
    if time_file is not None:
        if not time_file.is_file():
            raise RecscaleError(f"{time_file}: no such time file")
        texp = "'user t1 t2 ...' lining up with the item file (Unix seconds)"
        times = _s3rec_rows(time_file, "timestamp", texp)
        frame = _align_times(path, time_file, frame, times, texp)
    return Interactions(finish(frame), str(path), ordered=True)


def _align_times(
    path: Path, time_file: Path, items: pl.DataFrame, times: pl.DataFrame, expected: str
) -> pl.DataFrame:
    """Attach timestamps; any line whose user or length differs from the item file is an error."""
    ishape = items.group_by("line", maintain_order=True).agg(pl.col("user").first(), pl.len())
    tshape = times.group_by("line", maintain_order=True).agg(pl.col("user").first(), pl.len())
    if ishape.height != tshape.height:
        raise RecscaleError(
            f"{time_file}: has {tshape.height} non-blank lines but {path} has {ishape.height}; "
            f"expected {expected}"
        )
    ishape = ishape.with_row_index("k")
    tshape = tshape.with_row_index("k")
    both = ishape.join(tshape, on="k", suffix="_t")
    bad = both.filter((pl.col("user") != pl.col("user_t")) | (pl.col("len") != pl.col("len_t")))
    if bad.height:
        row = bad.row(0, named=True)
        raise RecscaleError(
            f"{time_file}:{row['line_t']}: user {row['user_t']} with {row['len_t']} timestamps "
            "does "
            f"not line up with {path}:{row['line']} (user {row['user']}, {row['len']} items); "
            f"expected {expected}"
        )
    times = to_int(time_file, times, "timestamp", "timestamp", expected)
    return items.with_columns(times["timestamp"])


@READERS.register("movielens-dat")
def read_movielens_dat(path: Path, columns=None, time_file=None) -> Interactions:
    """``UserID::MovieID::Rating::Timestamp`` (ML-1M ``ratings.dat``, latin-1)."""
    expected = "'UserID::MovieID::Rating::Timestamp'"
    roles = ("user", "item", "rating", "timestamp")
    frame = fixed_fields(path, "::", roles, expected, encoding="latin-1")
    return Interactions(finish(frame), str(path))


@READERS.register("ml-100k")
def read_ml100k(path: Path, columns=None, time_file=None) -> Interactions:
    """``user\\titem\\trating\\ttimestamp`` (ML-100K ``u.data``)."""
    expected = "'user<TAB>item<TAB>rating<TAB>timestamp'"
    roles = ("user", "item", "rating", "timestamp")
    frame = fixed_fields(path, "\t", roles, expected)
    return Interactions(finish(frame), str(path))
