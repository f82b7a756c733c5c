"""Downloads: a loopback HTTP server and file:// URLs; checksum, atomic rename, zip members."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from functools import partial

import pytest

from recscale.data.download import download, extract_member, sha256_file
from recscale.errors import RecscaleError

PAYLOAD = b"1 2\n1 3\n" * 50_000


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "data.txt").write_bytes(PAYLOAD)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_http_download_verified(server, tmp_path):
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    dest = download(f"{server}/data.txt", tmp_path / "out" / "data.txt", sha, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert list(dest.parent.iterdir()) == [dest]  # no temporary file left


def test_http_checksum_mismatch_keeps_nothing(server, tmp_path):
    dest = tmp_path / "out" / "data.txt"
    with pytest.raises(RecscaleError) as err:
        download(f"{server}/data.txt", dest, "0" * 64, progress=False)
    msg = str(err.value)
    assert "0" * 64 in msg and hashlib.sha256(PAYLOAD).hexdigest() in msg
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_http_404_is_user_error(server, tmp_path):
    with pytest.raises(RecscaleError, match=r"cannot download .*missing\.txt"):
        download(f"{server}/missing.txt", tmp_path / "x", progress=False)


def test_file_url_and_zip_member(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml/ratings.dat", "1::2::3::4\n")
    dest = download(
        archive.as_uri(), tmp_path / "dl" / "a.zip", sha256_file(archive), progress=False
    )
    out = extract_member(dest, "ml/ratings.dat", tmp_path / "dl" / "ratings.dat")
    assert out.read_text() == "1::2::3::4\n"
    with pytest.raises(RecscaleError, match=r"has no member 'nope'; it has: ml/ratings\.dat"):
        extract_member(dest, "nope", tmp_path / "x")
    (tmp_path / "bad.zip").write_bytes(b"nope")
    with pytest.raises(RecscaleError, match="not a valid zip archive"):
        extract_member(tmp_path / "bad.zip", "m", tmp_path / "y")
