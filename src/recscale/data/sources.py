"""Stage 1 of loading, resolution: a dataset's declared files -> files on this disk.

A file is found, in this order: an explicit ``data_dir``; the mirror directory in
``RECSCALE_DATA_MIRROR`` (same layout as ``shared/data``); a previous download under
``RECSCALE_HOME/downloads``; a fresh download from the official URL (sha256-checked
where the hash is known). A file found nowhere raises one error that lists every
place looked and the URL to fetch. Interaction files and side files (titles,
attributes) go through the same resolver.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from recscale.data.download import download, extract_member, sha256_file
from recscale.data.specs import DataFile, DatasetSpec, ResolvedFile, SideSource
from recscale.errors import RecscaleError

T = TypeVar("T")


def recscale_home() -> Path:
    """Root of downloads and the dataset cache: ``RECSCALE_HOME``, else ``~/.cache/recscale``."""
    return Path(os.environ.get("RECSCALE_HOME") or Path.home() / ".cache" / "recscale")


def resolve_files(
    spec: DatasetSpec, data_dir: str | Path | None = None, allow_download: bool = True
) -> list[ResolvedFile]:
    """Locate (or download) every file of ``spec``; see the module docstring for the order."""
    return [resolve_file(spec, f, data_dir, allow_download) for f in spec.files]


def resolve_paths(path: str | Path, time_file: str | Path | None = None) -> list[ResolvedFile]:
    """A user's own interaction file (and aligned time file) as resolved files."""
    path = Path(path)
    if not path.is_file():
        raise RecscaleError(f"{path}: no such file")
    files = [ResolvedFile("interactions", path, sha256_file(path))]
    if time_file is not None:
        time_file = Path(time_file)
        if not time_file.is_file():
            raise RecscaleError(f"{time_file}: no such time file")
        files.append(ResolvedFile("times", time_file, sha256_file(time_file)))
    return files


def _check_sha(path: Path, expected: str | None) -> str:
    got = sha256_file(path)
    if expected is not None and got != expected:
        raise RecscaleError(f"checksum mismatch for {path}: expected sha256 {expected}, got {got}")
    return got


def resolve_file(
    spec: DatasetSpec, f: DataFile, data_dir: str | Path | None, allow_download: bool
) -> ResolvedFile:
    looked: list[str] = []
    roots: list[tuple[str, Path]] = []
    if data_dir is not None:
        roots.append(("data_dir", Path(data_dir)))
    mirror = os.environ.get("RECSCALE_DATA_MIRROR")
    if mirror:
        roots.append(("RECSCALE_DATA_MIRROR", Path(mirror)))
    for origin, root in roots:
        for copy in f.mirror:
            path = root / copy.path
            looked.append(f"{path} ({origin})")
            if path.is_file():
                sha = _check_sha(path, copy.sha256)
                return ResolvedFile(f.role, path, sha, copy.partial, copy.partial_stats)
        if origin == "data_dir":
            # A user's own directory may hold the bare file or the archive.
            names = [Path(f.member).name] if f.member else []
            names.append(f.download_name)
            for name in dict.fromkeys(names):
                path = root / name
                looked.append(f"{path} (data_dir)")
                if path.is_file():
                    return _from_download(f, path, check=name == f.download_name)

    cached = recscale_home() / "downloads" / spec.name / f.download_name
    looked.append(f"{cached} (download cache)")
    if not os.environ.get("RECSCALE_DATA_MIRROR"):
        looked.append("no mirror: RECSCALE_DATA_MIRROR is not set")
    if cached.is_file():
        return _from_download(f, cached, check=True)
    if f.url is None or not allow_download:
        where = "; ".join(looked)
        hint = f"download it from {f.url}" if f.url else "no official download is known"
        raise RecscaleError(
            f"dataset {spec.name!r}: file {f.mirror[0].path} not found; looked in: {where}; {hint}"
        )
    try:
        download(f.url, cached, f.sha256)
    except RecscaleError as exc:
        where = "; ".join(looked)
        raise RecscaleError(
            f"dataset {spec.name!r}: file {f.mirror[0].path} not found (looked in: {where}) "
            f"and the download failed: {exc}"
        ) from None
    return _from_download(f, cached, check=False)


def _from_download(f: DataFile, path: Path, check: bool) -> ResolvedFile:
    """A downloaded file or archive -> the needed file (extracting a zip member beside it)."""
    sha = _check_sha(path, f.sha256 if check else None)
    if f.member and path.name == f.download_name:
        target = path.parent / Path(f.member).name
        if not target.is_file():
            extract_member(path, f.member, target)
        path = target
        sha = sha256_file(path)
    return ResolvedFile(f.role, path, sha)


def read_side(
    spec: DatasetSpec,
    source: SideSource[T],
    data_dir: str | Path | None = None,
    allow_download: bool = True,
) -> T:
    """Locate the side files of ``source`` (as files of ``spec``) and parse them."""
    paths = [resolve_file(spec, f, data_dir, allow_download).path for f in source.files]
    return source.parse(paths)
