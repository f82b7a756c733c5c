"""What a dataset is made of: its files, where copies of them live, what it should contain.

Plain frozen dataclasses: :mod:`recscale.data.catalogue` fills them in for every registered
dataset and :mod:`recscale.data.sources` locates their files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Published:
    """Published counts after the default recipe; None = not published.

    ``verified`` is False where our recipe could not be run against the real file here
    (e.g. Amazon Books): a mismatch then warns instead of raising.
    """

    users: int | None = None
    items: int | None = None
    interactions: int | None = None
    verified: bool = True


@dataclass(frozen=True)
class MirrorFile:
    """A copy of a source file inside the mirror layout.

    ``partial`` marks a subset of the official file (e.g. ML-1M users 1-2999): the full
    published check is skipped and ``partial_stats`` is checked instead.
    """

    path: str
    sha256: str | None = None
    partial: bool = False
    partial_stats: Published | None = None


@dataclass(frozen=True)
class DataFile:
    """One input file of a dataset.

    Attributes:
        role: ``interactions``, ``times`` (an S3-Rec time file aligned with the items) or
            ``side`` (item metadata: titles, genres, attributes).
        mirror: copies in the mirror layout, in order of preference.
        url: official download URL (an archive when ``member`` is set).
        sha256: sha256 of what ``url`` serves; None where no trusted hash is known.
        member: path of the needed file inside the zip at ``url``.
    """

    role: str
    mirror: tuple[MirrorFile, ...]
    url: str | None
    sha256: str | None = None
    member: str | None = None

    @property
    def download_name(self) -> str:
        return self.url.rsplit("/", 1)[-1] if self.url else Path(self.mirror[0].path).name


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    format: str
    files: tuple[DataFile, ...]
    published: Published
    recipe: dict[str, Any] = field(default_factory=dict)
    columns: dict[str, str | int] | None = None


@dataclass(frozen=True)
class ResolvedFile:
    """A located file: where it is, its sha256, whether it is a partial copy."""

    role: str
    path: Path
    sha256: str
    partial: bool = False
    partial_stats: Published | None = None


@dataclass(frozen=True)
class SideSource(Generic[T]):
    """Side files of one dataset (found like its interaction files) and how to parse them."""

    files: tuple[DataFile, ...]
    parse: Callable[[list[Path]], T]
