"""What every format reader shares: the raw-interactions type, the format registry, and
line/field parsing that reports a malformed file by its path and 1-based line number.

Readers do no filtering or sorting; they return rows in file order so that the
preprocessing step can sort stably ("ties keep file order"). The happy path is
vectorised (polars over the whole file); only the error path looks at single lines.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
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


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when the name ends in ``.gz``."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise RecscaleError(f"{path}: not a valid gzip file ({exc})") from None
    return data


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """The decoded text; an empty file or bad bytes are reported (the latter by line)."""
    data = read_bytes(path)
    if not data.strip():
        raise RecscaleError(f"{path}: file is empty")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RecscaleError(f"{path}:{line}: not valid {encoding} text") from None


def read_lines(path: Path, encoding: str = "utf-8") -> pl.DataFrame:
    """Non-blank lines as a frame ``(line: 1-based number, text)``; blank lines are skipped."""
    lines = read_text(path, encoding).split("\n")
    frame = pl.DataFrame({"text": lines}).with_row_index("line", offset=1)
    frame = frame.with_columns(pl.col("text").str.strip_chars_end("\r"))
    return frame.filter(pl.col("text").str.strip_chars() != "")


def fail(path: Path, line: int, problem: str, expected: str) -> RecscaleError:
    return RecscaleError(f"{path}:{line}: {problem}; expected {expected}")


def split_fields(
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
        raise fail(path, row["line"], f"found {row['n']} fields, need {want}", expected)
    return frame


def to_int(path: Path, frame: pl.DataFrame, column: str, what: str, expected: str) -> pl.DataFrame:
    """Cast string column to Int64; a non-integer value is reported with its line."""
    cast = pl.col(column).str.strip_chars().cast(pl.Int64, strict=False)
    out = frame.with_columns(cast.alias(column + "_int"))
    bad = out.filter(pl.col(column + "_int").is_null())
    if bad.height:
        row = bad.row(0, named=True)
        raise fail(path, row["line"], f"{what} {row[column]!r} is not an integer", expected)
    return out.drop(column).rename({column + "_int": column})


def positive(path: Path, frame: pl.DataFrame, column: str, what: str, expected: str) -> None:
    """Ids of the line formats are positive integers (1-based, 0 is no one); the first that
    is not is reported with its line."""
    bad = frame.filter(pl.col(column) < 1)
    if bad.height:
        row = bad.row(0, named=True)
        raise fail(path, row["line"], f"{what} {row[column]} is not a positive integer", expected)


def to_float(
    path: Path, frame: pl.DataFrame, column: str, what: str, expected: str
) -> pl.DataFrame:
    cast = pl.col(column).str.strip_chars().cast(pl.Float64, strict=False)
    out = frame.with_columns(cast.alias(column + "_f"))
    bad = out.filter(pl.col(column + "_f").is_null() | pl.col(column + "_f").is_nan())
    if bad.height:
        row = bad.row(0, named=True)
        raise fail(path, row["line"], f"{what} {row[column]!r} is not a number", expected)
    return out.drop(column).rename({column + "_f": column})


def fixed_fields(
    path: Path, sep: str, roles: tuple[str, ...], expected: str, encoding: str = "utf-8"
) -> pl.DataFrame:
    """Parse a file of fixed-width records of integer ids / timestamps and float ratings."""
    frame = split_fields(path, read_lines(path, encoding), sep, len(roles), expected)
    frame = frame.select(
        "line", *[pl.col("fields").list.get(i).alias(role) for i, role in enumerate(roles)]
    )
    for role in roles:
        if role == "rating":
            frame = to_float(path, frame, role, role, expected)
        else:
            frame = to_int(path, frame, role, role, expected)
            if role in ("user", "item"):
                positive(path, frame, role, f"{role} id", expected)
    return frame


def finish(frame: pl.DataFrame) -> pl.DataFrame:
    cols = [c for c in ROLES if c in frame.columns]
    out = frame.select(cols)
    if "rating" in out.columns:
        out = out.with_columns(pl.col("rating").cast(pl.Float32))
    return out
