"""Resolution: data_dir, mirror, download cache, download, clear misses."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from recscale.data.catalogue import get_spec
from recscale.data.sources import recscale_home, resolve_files, resolve_paths
from recscale.data.specs import DataFile, DatasetSpec, MirrorFile, Published
from recscale.errors import RecscaleError


def spec_for(url: str | None, sha: str | None = None, member: str | None = None) -> DatasetSpec:
    f = DataFile("interactions", (MirrorFile("toy/data.txt"),), url=url, sha256=sha, member=member)
    return DatasetSpec("toy", "a toy", "sasrec", (f,), Published())


def test_order_data_dir_then_mirror(tmp_path, monkeypatch):
    mirror, mine = tmp_path / "mirror", tmp_path / "mine"
    for root in (mirror, mine):
        (root / "toy").mkdir(parents=True)
        (root / "toy" / "data.txt").write_text(f"1 {root.name}\n")
    monkeypatch.setenv("RECSCALE_DATA_MIRROR", str(mirror))
    spec = spec_for(None)
    assert resolve_files(spec, mine)[0].path == mine / "toy" / "data.txt"
    assert resolve_files(spec)[0].path == mirror / "toy" / "data.txt"


def test_missing_lists_every_place_and_url(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSCALE_DATA_MIRROR", str(tmp_path / "mirror"))
    spec = spec_for("https://example.org/data.txt")
    with pytest.raises(RecscaleError) as err:
        resolve_files(spec, tmp_path / "mine", allow_download=False)
    msg = str(err.value)
    for where in (
        "mine/toy/data.txt (data_dir)",
        "mirror/toy/data.txt (RECSCALE_DATA_MIRROR)",
        "(download cache)",
        "download it from https://example.org/data.txt",
    ):
        assert where in msg, msg


def test_download_then_cache_then_extract(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSCALE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("RECSCALE_HOME", str(tmp_path / "home"))
    archive = tmp_path / "toy.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("toy/data.txt", "1 2\n")
    spec = spec_for(archive.as_uri(), member="toy/data.txt")
    got = resolve_files(spec)[0]
    assert got.path.read_text() == "1 2\n" and got.path.name == "data.txt"
    assert "downloads" in str(got.path)
    archive.unlink()  # the second resolution must not need the source any more
    assert resolve_files(spec)[0].path == got.path


def test_download_checksum_mismatch(tmp_path, monkeypatch):
    monkeypatch.delenv("RECSCALE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("RECSCALE_HOME", str(tmp_path / "home"))
    src = tmp_path / "data.txt"
    src.write_text("1 2\n")
    with pytest.raises(
        RecscaleError, match=r"download failed: checksum mismatch .*expected sha256 f{64}, got"
    ):
        resolve_files(spec_for(src.as_uri(), sha="f" * 64))


def test_mirror_checksum_mismatch(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "data.txt").write_text("1 2\n")
    monkeypatch.setenv("RECSCALE_DATA_MIRROR", str(tmp_path))
    spec = spec_for(None)
    bad = replace(spec.files[0], mirror=(MirrorFile("toy/data.txt", sha256="a" * 64),))
    with pytest.raises(
        RecscaleError, match=r"checksum mismatch .*expected sha256 a{64}, got [0-9a-f]{64}"
    ):
        resolve_files(replace(spec, files=(bad,)))


def test_own_files_resolve_with_their_sha256(tmp_path):
    items, times = tmp_path / "mine.txt", tmp_path / "mine_time.txt"
    items.write_text("1 2 3\n")
    with pytest.raises(RecscaleError, match="no such file"):
        resolve_paths(tmp_path / "none.txt")
    with pytest.raises(RecscaleError, match="no such time file"):
        resolve_paths(items, times)
    times.write_text("1 5 6\n")
    got = resolve_paths(items, times)
    assert [(f.role, f.path) for f in got] == [("interactions", items), ("times", times)]
    assert len(got[0].sha256) == 64 and got[0].sha256 != got[1].sha256


def test_home_default(monkeypatch):
    monkeypatch.delenv("RECSCALE_HOME")
    assert recscale_home() == Path.home() / ".cache" / "recscale"


@pytest.mark.integration
def test_real_mirror_resolves_every_available_dataset():
    for name in (
        "ml-1m",
        "ml-1m-sasrec",
        "ml-100k",
        "amazon-beauty",
        "amazon-toys",
        "lastfm",
        "amazon-videogames",
        "amazon-beauty-bert4rec",
    ):
        files = resolve_files(get_spec(name), allow_download=False)
        assert all(f.path.is_file() for f in files)
    ml1m = resolve_files(get_spec("ml-1m"), allow_download=False)[0]
    assert ml1m.partial and ml1m.partial_stats == Published(2_999, 3_615, 487_650)
