"""The read stage's entry point: format dispatch, gz, missing files, any bytes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recscale.data.readers import format_names, read_interactions
from recscale.errors import RecscaleError

from .conftest import write

HYP = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_format_names_come_from_the_registry():
    assert format_names() == sorted(
        ["sasrec", "s3rec", "movielens-dat", "ml-100k", "csv", "parquet", "recbole"]
    )


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(RecscaleError, match="no such file"):
        read_interactions(tmp_path / "nope.txt", "sasrec")
    with pytest.raises(RecscaleError, match=r"unknown data format 'xml'; known: .*sasrec"):
        read_interactions(write(tmp_path, "a.txt", "1 2\n"), "xml")


def test_gz_is_transparent(tmp_path):
    plain = read_interactions(write(tmp_path, "a.txt", "1 5\n1 3\n"), "sasrec").frame
    gz = read_interactions(write(tmp_path, "a.txt.gz", "1 5\n1 3\n"), "sasrec").frame
    assert plain.equals(gz)


def test_empty_file(tmp_path):
    for fmt in ("sasrec", "s3rec", "movielens-dat", "ml-100k", "csv", "recbole"):
        with pytest.raises(RecscaleError, match="file is empty"):
            read_interactions(write(tmp_path, "e.txt", "\n  \n"), fmt)


# ---------------------------------------------------------------- property tests


@HYP
@given(data=st.binary(max_size=200))
def test_random_bytes_never_crash(tmp_path, data):
    path = tmp_path / "r.txt"
    path.write_bytes(data)
    for fmt in ("sasrec", "s3rec", "movielens-dat", "ml-100k", "csv", "recbole"):
        with contextlib.suppress(RecscaleError):
            read_interactions(path, fmt)
