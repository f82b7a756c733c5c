"""Table formats: CSV, Parquet and RecBole atomic files, with a column mapping to roles.

- ``csv`` / ``parquet``: a table with a column mapping ``{user, item, timestamp?, rating?}``.
- ``recbole``: atomic ``.inter`` files, tab-separated, header ``name:type`` fields.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from recscale.data.readers_base import (
    READERS,
    ROLES,
    Interactions,
    fail,
    finish,
    read_bytes,
    to_float,
)
from recscale.errors import RecscaleError


def first_line(exc: BaseException) -> str:
    """The first line of a library's message (polars adds hints on further lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _map_columns(path: Path, frame: pl.DataFrame, columns: Mapping[str, str | int]) -> pl.DataFrame:
    unknown = set(columns) - set(ROLES)
    if unknown:
        raise RecscaleError(f"column mapping has unknown roles {sorted(unknown)}; allowed: {ROLES}")
    for role in ("user", "item"):
        if role not in columns:
            raise RecscaleError(f"column mapping for {path} needs {role!r}; got {dict(columns)}")
    exprs = []
    for role, col in columns.items():
        name = frame.columns[col] if isinstance(col, int) and col < frame.width else col
        if name not in frame.columns:
            raise RecscaleError(
                f"{path}: no column {col!r} for {role}; columns are {frame.columns}"
            )
        exprs.append(pl.col(name).alias(role))
    return frame.select(exprs)


def _check_table(path: Path, frame: pl.DataFrame, header_lines: int, expected: str) -> pl.DataFrame:
    """Typed checks on a table: no missing ids, integer timestamps, numeric ratings."""
    if frame.height == 0:
        raise RecscaleError(f"{path}: file has no rows")
    frame = frame.with_row_index("line", offset=1 + header_lines)
    for role in ("user", "item"):
        if frame[role].dtype == pl.String:
            frame = frame.with_columns(pl.col(role).str.strip_chars())
            bad = frame.filter(pl.col(role).is_null() | (pl.col(role) == ""))
        else:
            bad = frame.filter(pl.col(role).is_null())
        if bad.height:
            raise fail(path, bad["line"][0], f"missing {role} id", expected)
        if frame[role].dtype.is_float():
            raise RecscaleError(f"{path}: {role} ids must be integers or strings, not floats")
        if frame[role].dtype != pl.String:
            frame = frame.with_columns(pl.col(role).cast(pl.Int64))
    if "timestamp" in frame.columns:
        ts = frame["timestamp"]
        if ts.dtype == pl.String:
            frame = to_float(path, frame, "timestamp", "timestamp", expected)
        elif ts.null_count():
            line = frame.filter(pl.col("timestamp").is_null())["line"][0]
            raise fail(path, line, "missing timestamp", expected)
        frame = frame.with_columns(pl.col("timestamp").round().cast(pl.Int64))
    if "rating" in frame.columns:
        if frame["rating"].dtype == pl.String:
            frame = to_float(path, frame, "rating", "rating", expected)
        elif frame["rating"].null_count():
            line = frame.filter(pl.col("rating").is_null())["line"][0]
            raise fail(path, line, "missing rating", expected)
    return frame


def _read_csv(path: Path, sep: str, has_header: bool, expected: str, schema=None) -> pl.DataFrame:
    data = read_bytes(path)
    if not data.strip():
        raise RecscaleError(f"{path}: file is empty")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecscaleError(f"{path}:{line}: not valid utf-8 text; expected {expected}") from None
    try:
        return pl.read_csv(
            io.BytesIO(data),
            separator=sep,
            has_header=has_header,
            quote_char='"' if sep == "," else None,
            schema_overrides=schema,
            infer_schema_length=10000,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as exc:
        _locate_ragged(path, data, sep, expected)
        raise RecscaleError(f"{path}: cannot parse as {expected}: {first_line(exc)}") from None


def _locate_ragged(path: Path, data: bytes, sep: str, expected: str) -> None:
    """Slow path, only after the fast parse failed: find the first line with a wrong field count."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    width = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        n = line.rstrip("\r").count(sep) + 1
        if width is None:
            width = n
        elif n != width:
            raise fail(path, number, f"found {n} fields, the first line has {width}", expected)


@READERS.register("csv")
def read_csv(
    path: Path, columns: Mapping[str, str | int] | None = None, time_file=None
) -> Interactions:
    """CSV with a header (map by name) or without (``columns`` given by position).

    ``columns`` maps roles to columns, e.g. ``{"user": "userId", "item": "movieId",
    "rating": "rating", "timestamp": "timestamp"}``; integer values select by position and
    mean the file has no header.
    """
    if not columns:
        columns = {"user": "user", "item": "item", "timestamp": "timestamp", "rating": "rating"}
        has_header = True
    else:
        has_header = not all(isinstance(c, int) for c in columns.values())
    expected = f"CSV with columns {dict(columns)}"
    frame = _read_csv(path, ",", has_header, expected)
    # Optional roles the file lacks are dropped; user and item stay so a missing one is an error.
    mapping = {
        r: c
        for r, c in columns.items()
        if r in ("user", "item") or isinstance(c, int) or c in frame.columns
    }
    frame = _map_columns(path, frame, mapping)
    frame = _check_table(path, frame, 1 if has_header else 0, expected)
    return Interactions(finish(frame), str(path))


@READERS.register("parquet")
def read_parquet(
    path: Path, columns: Mapping[str, str | int] | None = None, time_file=None
) -> Interactions:
    """Parquet table with a column mapping (default: columns named after the roles)."""
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars/pyarrow raise many types for a broken file
        raise RecscaleError(f"{path}: not a readable Parquet file ({first_line(exc)})") from None
    columns = columns or {r: r for r in ROLES if r in frame.columns or r in ("user", "item")}
    frame = _map_columns(path, frame, columns)
    frame = _check_table(path, frame, 0, f"Parquet with columns {dict(columns)}")
    return Interactions(finish(frame), str(path))


@READERS.register("recbole")
def read_recbole(
    path: Path, columns: Mapping[str, str | int] | None = None, time_file=None
) -> Interactions:
    """RecBole atomic ``.inter`` file: tab-separated, header fields ``name:type``.

    Roles default to the fields ``user_id``, ``item_id``, ``timestamp``, ``rating``; ``columns``
    maps roles to other field names (without the ``:type`` suffix).
    """
    expected = "RecBole atomic file: tab-separated, header 'user_id:token\\titem_id:token\\t...'"
    data = read_bytes(path)
    if not data.strip():
        raise RecscaleError(f"{path}: file is empty")
    header = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r").split("\t")
    names, types = [], []
    for field in header:
        name, colon, kind = field.partition(":")
        if not colon or kind not in ("token", "float", "token_seq", "float_seq"):
            raise fail(path, 1, f"header field {field!r} has no type", expected)
        names.append(name)
        types.append(kind)
    schema = {
        n: (pl.String if k.startswith("token") else pl.Float64)
        for n, k in zip(names, types, strict=True)
    }
    frame = _read_csv(path, "\t", True, expected, schema=None)
    frame = frame.rename(dict(zip(frame.columns, names, strict=False)))
    frame = frame.cast({n: t for n, t in schema.items() if n in frame.columns}, strict=False)
    wanted = columns or {
        "user": "user_id",
        "item": "item_id",
        "timestamp": "timestamp",
        "rating": "rating",
    }
    mapping = {r: c for r, c in wanted.items() if r in ("user", "item") or c in names}
    frame = _map_columns(path, frame, mapping)
    # Float columns that failed to parse became null: report their line.
    for role in ("timestamp", "rating"):
        if role in frame.columns and frame[role].null_count():
            line = int(frame.with_row_index("i").filter(pl.col(role).is_null())["i"][0]) + 2
            raise fail(path, line, f"{role} is not a number", expected)
    frame = _check_table(path, frame, 1, expected)
    return Interactions(finish(frame), str(path))
