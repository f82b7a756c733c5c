"""Format readers: a file on disk -> raw interactions (user, item, timestamp?, rating?).

Stage 2 of loading. Readers do no filtering or sorting; they return rows in file order
so that the preprocessing step can sort stably ("ties keep file order"). A malformed
file is reported with the file, the 1-based line number and the expected format.

Formats are the names in the registry ``READERS`` (:func:`format_names` lists them); each
module that registers some describes them: line formats (``sasrec``, ``s3rec``, MovieLens)
in :mod:`recscale.data.readers_lines`, tables (CSV, Parquet, RecBole) in
:mod:`recscale.data.readers_tables`. Files ending in ``.gz`` are decompressed transparently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from recscale.data.readers_base import READERS, ROLES, Interactions, Reader, read_bytes
from recscale.data.readers_lines import read_ml100k, read_movielens_dat, read_s3rec, read_sasrec
from recscale.data.readers_tables import read_csv, read_parquet, read_recbole
from recscale.errors import RecscaleError

__all__ = [
    "READERS",
    "ROLES",
    "TIME_FILE_FORMATS",
    "Interactions",
    "Reader",
    "format_names",
    "read_bytes",
    "read_csv",
    "read_interactions",
    "read_ml100k",
    "read_movielens_dat",
    "read_parquet",
    "read_recbole",
    "read_s3rec",
    "read_sasrec",
]


# Formats whose reader lines up a separate time file with the interactions (S3-Rec's
# ``*_time.txt``); the others carry timestamps in the file itself, or none.
TIME_FILE_FORMATS = ("s3rec",)


def format_names() -> list[str]:
    """Names of the registered formats, sorted (for help texts and error messages)."""
    return READERS.names()


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
    if time_file is not None and format not in TIME_FILE_FORMATS:
        raise RecscaleError(
            f"{time_file}: format {format!r} reads no separate time file "
            f"(formats that do: {', '.join(TIME_FILE_FORMATS)})"
        )
    return reader(path, columns=columns, time_file=None if time_file is None else Path(time_file))
