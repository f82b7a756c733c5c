"""Line formats: exact parsing, exact errors (file, line, expected format), random input."""

from __future__ import annotations

import os
import re
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recscale.data.readers import read_interactions
from recscale.errors import RecscaleError

from .conftest import write

HYP = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def test_sasrec_reads_in_file_order(tmp_path):
    it = read_interactions(write(tmp_path, "a.txt", "1 5\n1 3\n2 7\n"), "sasrec")
    assert it.frame.to_dict(as_series=False) == {"user": [1, 1, 2], "item": [5, 3, 7]}
    assert it.ordered and not it.has_timestamps


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("1 5\n1 x\n", 2, "item id 'x' is not an integer"),
        ("1 5\n1 3 4\n", 2, "found 3 fields, need 2"),
        ("1 5\n\n7\n", 3, "found 1 fields"),
        ("a 5\n", 1, "user id 'a' is not an integer"),
        ("1 5\n1 2.5\n", 2, "not an integer"),
    ],
)
def test_sasrec_errors_name_file_line_and_format(tmp_path, text, line, needle):
    path = write(tmp_path, "bad.txt", text)
    with pytest.raises(RecscaleError) as err:
        read_interactions(path, "sasrec")
    msg = str(err.value)
    assert msg.startswith(f"{path}:{line}:"), msg
    assert needle in msg
    assert "expected 'user item'" in msg


def test_s3rec_with_aligned_times(tmp_path):
    items = write(tmp_path, "B.txt", "1 4 5 6\n2 7 8\n")
    times = write(tmp_path, "B_time.txt", "1 10 20 30\n2 5 6\n")
    f = read_interactions(items, "s3rec", time_file=times).frame
    assert f["user"].to_list() == [1, 1, 1, 2, 2]
    assert f["item"].to_list() == [4, 5, 6, 7, 8]
    assert f["timestamp"].to_list() == [10, 20, 30, 5, 6]


@pytest.mark.parametrize(
    ("times", "needle"),
    [
        (
            "1 10 20 30\n2 5\n",
            r"B_time.txt:2: user 2 with 1 timestamps does not line up with .*B.txt:2",
        ),
        ("1 10 20 30\n3 5 6\n", r"B_time.txt:2: user 3"),
        ("1 10 20 30\n", r"has 1 non-blank lines but .* has 2"),
        ("1 10 x 30\n2 5 6\n", r"B_time.txt:1: timestamp 'x' is not an integer"),
    ],
)
def test_s3rec_misaligned_times(tmp_path, times, needle):
    items = write(tmp_path, "B.txt", "1 4 5 6\n2 7 8\n")
    tpath = write(tmp_path, "B_time.txt", times)
    with pytest.raises(RecscaleError, match=needle):
        read_interactions(items, "s3rec", time_file=tpath)


def test_s3rec_errors(tmp_path):
    with pytest.raises(RecscaleError, match=r"b.txt:2: found 1 fields, need at least 2"):
        read_interactions(write(tmp_path, "b.txt", "1 2 3\n4\n"), "s3rec")
    with pytest.raises(RecscaleError, match=r"b.txt:1: item id 'q' is not an integer"):
        read_interactions(write(tmp_path, "b.txt", "1 2 q\n"), "s3rec")


def test_movielens_dat(tmp_path):
    path = write(tmp_path, "r.dat.gz", "1::1193::5::978300760\n2::661::3::978302109\n")
    f = read_interactions(path, "movielens-dat").frame
    assert f.columns == ["user", "item", "timestamp", "rating"]
    assert f.row(0) == (1, 1193, 978300760, 5.0)
    bad = write(tmp_path, "r.dat", "1::1193::5::978300760\n2::661::3\n")
    with pytest.raises(
        RecscaleError, match=r"r.dat:2: found 3 fields, need 4; expected 'UserID::MovieID"
    ):
        read_interactions(bad, "movielens-dat")
    bad = write(tmp_path, "r.dat", "1::1193::five::978300760\n")
    with pytest.raises(RecscaleError, match=r"r.dat:1: rating 'five' is not a number"):
        read_interactions(bad, "movielens-dat")


def test_ml100k(tmp_path):
    f = read_interactions(write(tmp_path, "u.data", "196\t242\t3\t881250949\n"), "ml-100k").frame
    assert f.row(0) == (196, 242, 881250949, 3.0)
    with pytest.raises(RecscaleError, match=r"u.data:1: found 1 fields, need 4"):
        read_interactions(write(tmp_path, "u.data", "196 242 3 881250949\n"), "ml-100k")


# ---------------------------------------------------------------- property tests

ids = st.integers(min_value=1, max_value=10**12)
pairs = st.lists(st.tuples(ids, ids), min_size=1, max_size=30)


@HYP
@given(pairs=pairs, gz=st.booleans())
def test_sasrec_roundtrip_random(tmp_path, pairs, gz):
    text = "".join(f"{u} {i}\n" for u, i in pairs)
    f = read_interactions(write(tmp_path, "r.txt.gz" if gz else "r.txt", text), "sasrec").frame
    assert list(zip(f["user"].to_list(), f["item"].to_list(), strict=True)) == pairs


@HYP
@given(seqs=st.lists(st.lists(ids, min_size=1, max_size=8), min_size=1, max_size=10))
def test_s3rec_roundtrip_random(tmp_path, seqs):
    text = "".join(f"{u + 1} " + " ".join(map(str, s)) + "\n" for u, s in enumerate(seqs))
    f = read_interactions(write(tmp_path, "s.txt", text), "s3rec").frame
    assert f["item"].to_list() == [i for s in seqs for i in s]
    assert f["user"].to_list() == [u + 1 for u, s in enumerate(seqs) for _ in s]


@HYP
@given(
    pairs=pairs,
    where=st.integers(min_value=0, max_value=29),
    junk=st.sampled_from(["x", "1.5", "", "1 2 3", "-", "1e3", "٣"]),
)
def test_sasrec_broken_line_is_located(tmp_path, pairs, where, junk):
    lines = [f"{u} {i}" for u, i in pairs]
    k = where % len(lines)
    lines[k] = f"{pairs[k][0]} {junk}" if junk else str(pairs[k][0])
    path = write(tmp_path, "r.txt", "\n".join(lines) + "\n")
    with pytest.raises(RecscaleError) as err:
        read_interactions(path, "sasrec")
    assert re.match(rf"{re.escape(str(path))}:{k + 1}: ", str(err.value)), str(err.value)


@HYP
@given(pairs=pairs, where=st.integers(min_value=0, max_value=29), bad=st.integers(-5, 0))
def test_non_positive_ids_are_refused_at_their_line(tmp_path, pairs, where, bad):
    k = where % len(pairs)
    lines = [f"{u} {i}" for u, i in pairs]
    lines[k] = f"{pairs[k][0]} {bad}"
    path = write(tmp_path, "r.txt", "\n".join(lines) + "\n")
    with pytest.raises(RecscaleError, match=rf":{k + 1}: item id {bad} is not a positive"):
        read_interactions(path, "sasrec")


@HYP
@given(
    seqs=st.lists(st.lists(ids, min_size=1, max_size=4), min_size=2, max_size=8),
    data=st.data(),
)
def test_s3rec_user_on_two_lines_is_refused_naming_both(tmp_path, seqs, data):
    users = list(range(1, len(seqs) + 1))
    first, second = sorted(
        data.draw(st.lists(st.sampled_from(range(len(seqs))), min_size=2, max_size=2, unique=True))
    )
    users[second] = users[first]
    text = "".join(f"{u} " + " ".join(map(str, s)) + "\n" for u, s in zip(users, seqs, strict=True))
    path = write(tmp_path, "s.txt", text)
    with pytest.raises(RecscaleError) as err:
        read_interactions(path, "s3rec")
    assert str(err.value).startswith(
        f"{path}:{second + 1}: user {users[first]} already has a line ({path}:{first + 1})"
    )


def test_a_user_on_many_lines_is_the_sasrec_format(tmp_path):
    # One line per interaction, users interleaved: SASRec's own loader appends in file order.
    it = read_interactions(write(tmp_path, "a.txt", "1 5\n2 7\n1 3\n"), "sasrec")
    assert it.frame["user"].to_list() == [1, 2, 1]


# ---------------------------------------------------------------- real files


@pytest.mark.integration
def test_real_ml1m_partial_raw_file():
    mirror = Path(os.environ["RECSCALE_DATA_MIRROR"])
    f = read_interactions(
        mirror / "ml-1m/raw/ratings_partial_users1-2999.dat.gz", "movielens-dat"
    ).frame
    assert f.height == 487_650
    assert f["user"].n_unique() == 2_999 and f["item"].n_unique() == 3_615
    assert f["timestamp"].min() == 970_620_734 and f["timestamp"].max() == 1_046_388_675
    assert f["rating"].min() == 1 and f["rating"].max() == 5


@pytest.mark.integration
def test_real_beauty_time_file_lines_up():
    mirror = Path(os.environ["RECSCALE_DATA_MIRROR"])
    beauty = mirror / "amazon-beauty"
    f = read_interactions(
        beauty / "Beauty.txt", "s3rec", time_file=beauty / "Beauty_time.txt"
    ).frame
    assert f.height == 198_502
    # The time file is chronological per user (PROVENANCE.md), so it must be non-decreasing.
    gaps = f.select(pl.col("timestamp").diff().over("user").fill_null(0).min()).item()
    assert gaps >= 0
