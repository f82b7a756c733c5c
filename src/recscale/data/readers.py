"""Format readers: a file on disk -> raw interactions (user, item, timestamp?, rating?).

Readers do no filtering or sorting; they return rows in file order so that the
preprocessing step can sort stably ("ties keep file order"). The happy path is
vectorised (polars over the whole file); a malformed file is reported with the
file, the 1-based line number and the expected format.

Formats (registry ``READERS``):

- ``sasrec``: ``user item`` per line, chronological per user (SASRec / BERT4Rec).
- ``s3rec``: ``user i1 i2 ...`` per line, chronological (S3-Rec); an optional time file
  ``user t1 t2 ...`` lines up position by position with it.
- ``movielens-dat``: ``UserID::MovieID::Rating::Timestamp`` (ML-1M / ML-10M ``ratings.dat``).
- ``ml-100k``: ``user\\titem\\trating\\ttimestamp`` (``u.data``).
- ``csv`` / ``parquet``: a table with a column mapping ``{user, item, timestamp?, rating?}``.
- ``recbole``: atomic ``.inter`` files, tab-separated, header ``name:type`` fields.

Files ending in ``.gz`` are decompressed transparently.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recscale.errors import RecscaleError
from recscale.registry import Registry

ROLES = ("user", "item", "timestamp", "rating")


@dataclass(frozen=True)
class Interactions:
    """Raw interactions in file order.

    Attributes:
        frame: polars DataFrame with columns ``user``, ``item`` (Int64 or String), optional
            ``timestamp`` (Int64 Unix seconds) and ``rating`` (Float32); one row per interaction.
        source: the file it came from (for messages).
        ordered: True when file order is chronological within each user (line formats without
            timestamps rely on it).
    """

    frame: pl.DataFrame
    source: str
    ordered: bool = False

    @property
    def has_timestamps(self) -> bool:
        return "timestamp" in self.frame.columns

    @property
    def has_ratings(self) -> bool:
        return "rating" in self.frame.columns


Reader = Callable[..., Interactions]
READERS: Registry[Reader] = Registry("data format")


def read_interactions(
    path: str | Path,
    format: str,
    columns: Mapping[str, str | int] | None = None,
    time_file: str | Path | None = None,
) -> Interactions:
    """Read ``path`` in ``format`` (a name in ``READERS``) into raw interactions."""
    reader = READERS.get(format)
    path = Path(path)
    if not path.is_file():
        raise RecscaleError(f"{path}: no such file")
    return reader(path, columns=columns, time_file=None if time_file is None else Path(time_file))


# ---------------------------------------------------------------- helpers


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise RecscaleError(f"{path}: not a valid gzip file ({exc})") from None
    return data


def _text(path: Path, encoding: str = "utf-8") -> str:
    data = read_bytes(path)
    if not data.strip():
        raise RecscaleError(f"{path}: file is empty")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecscaleError(f"{path}:{line}: not valid {encoding} text") from None


def _lines(path: Path, encoding: str = "utf-8") -> pl.DataFrame:
    """Non-blank lines as a frame ``(line: 1-based number, text)``; blank lines are skipped."""
    lines = _text(path, encoding).split("\n")
    frame = pl.DataFrame({"text": lines}).with_row_index("line", offset=1)
    frame = frame.with_columns(pl.col("text").str.strip_chars_end("\r"))
    return frame.filter(pl.col("text").str.strip_chars() != "")


def _fail(path: Path, line: int, problem: str, expected: str) -> RecscaleError:
    return RecscaleError(f"{path}:{line}: {problem}; expected {expected}")


def _split_fields(
    path: Path, lines: pl.DataFrame, sep: str | None, nfields: int | None, expected: str
) -> pl.DataFrame:
    """Split each line into a list column ``fields``; check the field count per line.

    ``sep=None`` splits on runs of whitespace; ``nfields=None`` allows any count >= 2.
    """
    if sep is None:
        # A literal split is ~10x faster than the regex; use it when every gap is one space.
        irregular = lines.select(pl.col("text").str.contains(r"\s\s|\t|^\s|\s$").any()).item()
        fields = (
            pl.col("text").str.extract_all(r"\S+") if irregular else pl.col("text").str.split(" ")
        )
    else:
        fields = pl.col("text").str.split(sep)
    frame = lines.with_columns(fields.alias("fields")).with_columns(
        pl.col("fields").list.len().alias("n")
    )
    bad = frame.filter(pl.col("n") != nfields) if nfields else frame.filter(pl.col("n") < 2)
    if bad.height:
        row = bad.row(0, named=True)
        want = nfields or "at least 2"
        raise _fail(path, row["line"], f"found {row['n']} fields, need {want}", expected)
    return frame


def _to_int(path: Path, frame: pl.DataFrame, column: str, what: str, expected: str) -> pl.DataFrame:
    """Cast string column to Int64; a non-integer value is reported with its line."""
    cast = pl.col(column).str.strip_chars().cast(pl.Int64, strict=False)
    out = frame.with_columns(cast.alias(column + "_int"))
    bad = out.filter(pl.col(column + "_int").is_null())
    if bad.height:
        row = bad.row(0, named=True)
        raise _fail(path, row["line"], f"{what} {row[column]!r} is not an integer", expected)
    return out.drop(column).rename({column + "_int": column})


def _to_float(
    path: Path, frame: pl.DataFrame, column: str, what: str, expected: str
) -> pl.DataFrame:
    cast = pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
    out = frame.with_columns(cast.alias(column + "_f"))
    bad = out.filter(pl.col(column + "_f").is_null() | pl.col(column + "_f").is_nan())
    if bad.height:
        row = bad.row(0, named=True)
        raise _fail(path, row["line"], f"{what} {row[column]!r} is not a number", expected)
    return out.drop(column).rename({column + "_f": column})


def _fixed_fields(
    path: Path, sep: str, roles: tuple[str, ...], expected: str, encoding: str = "utf-8"
) -> pl.DataFrame:
    """Parse a file of fixed-width records of integer ids / timestamps and float ratings."""
    frame = _split_fields(path, _lines(path, encoding), sep, len(roles), expected)
    frame = frame.select(
        "line", *[pl.col("fields").list.get(i).alias(role) for i, role in enumerate(roles)]
    )
    for role in roles:
        if role == "rating":
            frame = _to_float(path, frame, role, role, expected)
        else:
            frame = _to_int(path, frame, role, role, expected)
    return frame


def _finish(frame: pl.DataFrame) -> pl.DataFrame:
    cols = [c for c in ROLES if c in frame.columns]
    out = frame.select(cols)
    if "rating" in out.columns:
        out = out.with_columns(pl.col("rating").cast(pl.Float32))
    return out


# ---------------------------------------------------------------- line formats


@READERS.register("sasrec")
def read_sasrec(path: Path, columns=None, time_file=None) -> Interactions:
    """``user item`` lines (SASRec ``ml-1m.txt``), chronological per user, no timestamps."""
    expected = "'user item' (two integers separated by whitespace)"
    frame = _split_fields(path, _lines(path), None, 2, expected)
    frame = frame.select(
        "line",
        pl.col("fields").list.get(0).alias("user"),
        pl.col("fields").list.get(1).alias("item"),
    )
    frame = _to_int(
        path, _to_int(path, frame, "user", "user id", expected), "item", "item id", expected
    )
    return Interactions(_finish(frame), str(path), ordered=True)


def _s3rec_rows(path: Path, what: str, expected: str) -> pl.DataFrame:
    """One row per (line, position): columns line, user, pos, value (string)."""
    frame = _split_fields(path, _lines(path), None, None, expected)
    frame = frame.select(
        "line",
        pl.col("fields").list.first().alias("user"),
        pl.col("fields").list.slice(1).alias("values"),
    )
    frame = _to_int(path, frame, "user", "user id", expected)
    frame = frame.with_columns(pl.int_ranges(0, pl.col("values").list.len()).alias("pos"))
    return frame.explode(["values", "pos"]).rename({"values": what})


@READERS.register("s3rec")
def read_s3rec(path: Path, columns=None, time_file: Path | None = None) -> Interactions:
    """``user i1 i2 ...`` lines (S3-Rec), chronological.

    ``time_file`` (``user t1 t2 ...``) lines up with it position by position.
    """
    expected = "'user item1 item2 ...' (integers separated by whitespace)"
    frame = _to_int(path, _s3rec_rows(path, "item", expected), "item", "item id", expected)
    if time_file is not None:
        if not time_file.is_file():
            raise RecscaleError(f"{time_file}: no such time file")
        texp = "'user t1 t2 ...' lining up with the item file (Unix seconds)"
        times = _s3rec_rows(time_file, "timestamp", texp)
        frame = _align_times(path, time_file, frame, times, texp)
    return Interactions(_finish(frame), str(path), ordered=True)


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
    times = _to_int(time_file, times, "timestamp", "timestamp", expected)
    return items.with_columns(times["timestamp"])


@READERS.register("movielens-dat")
def read_movielens_dat(path: Path, columns=None, time_file=None) -> Interactions:
    """``UserID::MovieID::Rating::Timestamp`` (ML-1M ``ratings.dat``, latin-1)."""
    expected = "'UserID::MovieID::Rating::Timestamp'"
    roles = ("user", "item", "rating", "timestamp")
    frame = _fixed_fields(path, "::", roles, expected, encoding="latin-1")
    return Interactions(_finish(frame), str(path))


@READERS.register("ml-100k")
def read_ml100k(path: Path, columns=None, time_file=None) -> Interactions:
    """``user\\titem\\trating\\ttimestamp`` (ML-100K ``u.data``)."""
    expected = "'user<TAB>item<TAB>rating<TAB>timestamp'"
    roles = ("user", "item", "rating", "timestamp")
    frame = _fixed_fields(path, "\t", roles, expected)
    return Interactions(_finish(frame), str(path))


# ---------------------------------------------------------------- tables


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
            raise _fail(path, bad["line"][0], f"missing {role} id", expected)
        if frame[role].dtype.is_float():
            raise RecscaleError(f"{path}: {role} ids must be integers or strings, not floats")
        if frame[role].dtype != pl.String:
            frame = frame.with_columns(pl.col(role).cast(pl.Int64))
    if "timestamp" in frame.columns:
        ts = frame["timestamp"]
        if ts.dtype == pl.String:
            frame = _to_float(path, frame, "timestamp", "timestamp", expected)
        elif ts.null_count():
            line = frame.filter(pl.col("timestamp").is_null())["line"][0]
            raise _fail(path, line, "missing timestamp", expected)
        frame = frame.with_columns(pl.col("timestamp").round().cast(pl.Int64))
    if "rating" in frame.columns:
        if frame["rating"].dtype == pl.String:
            frame = _to_float(path, frame, "rating", "rating", expected)
        elif frame["rating"].null_count():
            line = frame.filter(pl.col("rating").is_null())["line"][0]
            raise _fail(path, line, "missing rating", expected)
    return frame


def _read_csv(path: Path, sep: str, has_header: bool, expected: str, schema=None) -> pl.DataFrame:
    data = read_bytes(path)
    if not data.strip():
        raise RecscaleError(f"{path}: file is empty")
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
        raise RecscaleError(f"{path}: cannot parse as {expected}: {exc}") from None


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
            raise _fail(path, number, f"found {n} fields, the first line has {width}", expected)


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
    return Interactions(_finish(frame), str(path))


@READERS.register("parquet")
def read_parquet(
    path: Path, columns: Mapping[str, str | int] | None = None, time_file=None
) -> Interactions:
    """Parquet table with a column mapping (default: columns named after the roles)."""
    try:
        frame = pl.read_parquet(path)
    except Exception as exc:  # polars/pyarrow raise many types for a broken file
        raise RecscaleError(f"{path}: not a readable Parquet file ({exc})") from None
    columns = columns or {r: r for r in ROLES if r in frame.columns or r in ("user", "item")}
    frame = _map_columns(path, frame, columns)
    frame = _check_table(path, frame, 0, f"Parquet with columns {dict(columns)}")
    return Interactions(_finish(frame), str(path))


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
            raise _fail(path, 1, f"header field {field!r} has no type", expected)
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
            raise _fail(path, line, f"{role} is not a number", expected)
    frame = _check_table(path, frame, 1, expected)
    return Interactions(_finish(frame), str(path))
