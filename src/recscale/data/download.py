"""Downloading with a progress bar, a checksum and an atomic rename.

A download goes to a temporary file beside the target and is renamed into place
only after its sha256 matched, so an interrupted or corrupt download never looks
like a finished file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from recscale.errors import RecscaleError

CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60,
) -> Path:
    """Fetch ``url`` (http, https or file) to ``dest``; verify ``sha256`` when given.

    Returns ``dest``. Raises RecscaleError on a network failure or a checksum mismatch
    (the message prints both hashes); ``dest`` is untouched in either case.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise RecscaleError(f"cannot download {url}: {exc}") from None
            with response:
                total = response.headers.get("Content-Length")
                bar = tqdm(
                    total=int(total) if total else None,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=not progress,
                )
                with bar:
                    while block := response.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        got = digest.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise RecscaleError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}; "
                "the file was not kept"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def extract_member(archive: str | Path, member: str, dest: str | Path) -> Path:
    """Extract one ``member`` of a zip ``archive`` to ``dest`` (atomically)."""
    archive, dest = Path(archive), Path(dest)
    try:
        with zipfile.ZipFile(archive) as zf:
            try:
                info = zf.getinfo(member)
            except KeyError:
                names = ", ".join(zf.namelist()[:20])
                raise RecscaleError(
                    f"{archive} has no member {member!r}; it has: {names}"
                ) from None
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as out, zf.open(info) as src:
                    while block := src.read(CHUNK):
                        out.write(block)
                os.replace(tmp_name, dest)
            finally:
                Path(tmp_name).unlink(missing_ok=True)
    except zipfile.BadZipFile as exc:
        raise RecscaleError(f"{archive}: not a valid zip archive ({exc})") from None
    return dest
