"""Table formats (CSV, Parquet, RecBole): column mappings and errors by file and line."""

from __future__ import annotations

import polars as pl
import pytest

from recscale.data.readers import read_interactions
from recscale.errors import RecscaleError

from .conftest import write


def test_csv_with_header_mapping_and_positions(tmp_path):
    path = write(tmp_path, "r.csv", "userId,movieId,rating,timestamp\n1,10,4.5,100\n2,11,3.0,90\n")
    cols = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}
    f = read_interactions(path, "csv", columns=cols).frame
    assert f.row(1) == (2, 11, 90, 3.0)
    nohead = write(tmp_path, "b.csv", "A1,B9,5.0,1400000000\nA2,B9,4.0,1400000001\n")
    f = read_interactions(
        nohead, "csv", columns={"user": 0, "item": 1, "rating": 2, "timestamp": 3}
    ).frame
    assert f["user"].to_list() == ["A1", "A2"] and f["timestamp"].to_list() == [
        1400000000,
        1400000001,
    ]


def test_csv_errors(tmp_path):
    path = write(tmp_path, "r.csv", "u,i\n1,10\n")
    with pytest.raises(RecscaleError, match=r"no column 'user' for user; columns are \['u', 'i'\]"):
        read_interactions(path, "csv")
    path = write(tmp_path, "r.csv", "user,item,timestamp\n1,10,5\n2,,6\n")
    with pytest.raises(RecscaleError, match=r"r.csv:3: missing item id"):
        read_interactions(path, "csv")
    path = write(tmp_path, "r.csv", "user,item,timestamp\n1,10,5\n2,3,soon\n")
    with pytest.raises(RecscaleError, match=r"r.csv:3: timestamp 'soon' is not a number"):
        read_interactions(path, "csv")
    path = write(tmp_path, "r.csv", "user,item\n1,10\n2,3,4,5\n")
    with pytest.raises(RecscaleError, match=r"r.csv:3: found 4 fields"):
        read_interactions(path, "csv")


def test_parquet(tmp_path):
    path = tmp_path / "r.parquet"
    pl.DataFrame({"u": [1, 2], "i": ["a", "b"], "t": [5, 6]}).write_parquet(path)
    f = read_interactions(
        path, "parquet", columns={"user": "u", "item": "i", "timestamp": "t"}
    ).frame
    assert f.to_dict(as_series=False) == {"user": [1, 2], "item": ["a", "b"], "timestamp": [5, 6]}
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(RecscaleError, match="not a readable Parquet file"):
        read_interactions(tmp_path / "bad.parquet", "parquet")


def test_recbole_inter(tmp_path):
    text = (
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "196\t242\t3\t881250949\nu2\tx\t4\t881250950.0\n"
    )
    f = read_interactions(write(tmp_path, "ml.inter", text), "recbole").frame
    assert f["user"].to_list() == ["196", "u2"] and f["item"].to_list() == ["242", "x"]
    assert f["timestamp"].to_list() == [881250949, 881250950]
    bad = text.replace("\t881250950.0", "\tlater")
    with pytest.raises(RecscaleError, match=r"ml.inter:3: timestamp is not a number"):
        read_interactions(write(tmp_path, "ml.inter", bad), "recbole")
    with pytest.raises(RecscaleError, match=r"ml.inter:1: header field 'user_id' has no type"):
        read_interactions(write(tmp_path, "ml.inter", "user_id\titem_id:token\n1\t2\n"), "recbole")
