"""The dataset registry: where each dataset's files come from and what they should contain.

A file is found, in this order: an explicit ``data_dir``; the mirror directory in
``RECSCALE_DATA_MIRROR`` (same layout as ``shared/data``); a previous download under
``RECSCALE_HOME/downloads``; a fresh download from the official URL (sha256-checked
where the hash is known). A file found nowhere raises one error that lists every
place looked and the URL to fetch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recscale.data.download import download, extract_member, sha256_file
from recscale.errors import RecscaleError
from recscale.registry import Registry


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
        role: ``interactions`` or ``times`` (an S3-Rec time file aligned with the items).
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


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name)(spec)


def list_datasets() -> list[dict[str, Any]]:
    """One plain dict per registered dataset, sorted by name.

    Keys: name, description, format, users, items, interactions (published; None when
    not published), urls (official sources).
    """
    out = []
    for name in DATASETS.names():
        spec = DATASETS.get(name)
        out.append(
            {
                "name": name,
                "description": spec.description,
                "format": spec.format,
                "users": spec.published.users,
                "items": spec.published.items,
                "interactions": spec.published.interactions,
                "urls": [f.url for f in spec.files],
            }
        )
    return out


def get_spec(name: str) -> DatasetSpec:
    return DATASETS.get(name)


def recscale_home() -> Path:
    return Path(os.environ.get("RECSCALE_HOME") or Path.home() / ".cache" / "recscale")


def resolve_files(
    spec: DatasetSpec, data_dir: str | Path | None = None, allow_download: bool = True
) -> list[ResolvedFile]:
    """Locate (or download) every file of ``spec``; see the module docstring for the order."""
    return [resolve_file(spec, f, data_dir, allow_download) for f in spec.files]


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


# ---------------------------------------------------------------- the registry

_GL = "https://files.grouplens.org/datasets/movielens"
_S3REC = "https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/2a81540ae18615d88ef88227b0c066e5b74781e5/data"
_SASREC = (
    "https://raw.githubusercontent.com/kang205/SASRec/e3738967fddab206d6eeb4fda433e7a7034dd8b1/data"
)
_BERT4REC = "https://raw.githubusercontent.com/FeiSun/BERT4Rec/615eaf2004abecda487a38d5b0c72f3dcfcae5b3/data"
_TICOSEREC = "https://raw.githubusercontent.com/KingGugu/TiCoSeRec/302b2959f27bb16bb77acae5a471de82819bd1bd/data"

# The HSTU code keeps every MovieLens rating and sorts chronologically (REFERENCES.md §4).
_ML_RECIPE: dict[str, Any] = {}

register(
    DatasetSpec(
        name="ml-1m",
        description="MovieLens-1M raw ratings.dat (GroupLens), all ratings, timestamps",
        format="movielens-dat",
        files=(
            DataFile(
                "interactions",
                mirror=(
                    MirrorFile("ml-1m/raw/ratings.dat"),
                    MirrorFile("ml-1m/raw/ratings.dat.gz"),
                    MirrorFile(
                        "ml-1m/raw/ratings_partial_users1-2999.dat.gz",
                        sha256="2fedcf5405373a49df4041e3d3fe1e8db9eacf2c77c209ae1f686ea06b7a16d9",
                        partial=True,
                        partial_stats=Published(2_999, 3_615, 487_650),
                    ),
                ),
                url=f"{_GL}/ml-1m.zip",
                member="ml-1m/ratings.dat",
            ),
        ),
        published=Published(6_040, 3_706, 1_000_209),
        recipe=_ML_RECIPE,
    )
)

register(
    DatasetSpec(
        name="ml-1m-sasrec",
        description="ML-1M as preprocessed by SASRec/BERT4Rec (items with >= 5 ratings), "
        "no timestamps",
        format="sasrec",
        files=(
            DataFile(
                "interactions",
                mirror=(
                    MirrorFile(
                        "ml-1m/sasrec/ml-1m.txt.gz",
                        sha256="7c5d534ef3a363c21c424a260fa8e4e0dd0237d8370eb1a250280afbf03fd7dd",
                    ),
                    MirrorFile("ml-1m/sasrec/ml-1m.txt"),
                ),
                url=f"{_SASREC}/ml-1m.txt",
                sha256="b725f3acb3986fe3130bffd1e77a74d182a1f51799567a236dbd60270f95b0a2",
            ),
        ),
        published=Published(6_040, 3_416, 999_611),
    )
)

register(
    DatasetSpec(
        name="ml-100k",
        description="MovieLens-100K u.data, all ratings, timestamps",
        format="ml-100k",
        files=(
            DataFile(
                "interactions",
                mirror=(
                    MirrorFile(
                        "ml-100k/u.data",
                        sha256="06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
                    ),
                ),
                url=f"{_GL}/ml-100k.zip",
                member="ml-100k/u.data",
            ),
        ),
        published=Published(943, 1_682, 100_000),
        recipe=_ML_RECIPE,
    )
)

register(
    DatasetSpec(
        name="ml-20m",
        description="MovieLens-20M ratings.csv, all ratings, timestamps",
        format="csv",
        columns={"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"},
        files=(
            DataFile(
                "interactions",
                mirror=(MirrorFile("ml-20m/ratings.csv"), MirrorFile("ml-20m/ratings.csv.gz")),
                url=f"{_GL}/ml-20m.zip",
                member="ml-20m/ratings.csv",
            ),
        ),
        published=Published(138_493, 26_744, 20_000_263),
        recipe=_ML_RECIPE,
    )
)

register(
    DatasetSpec(
        name="amazon-books",
        description="Amazon Books 2014 ratings-only CSV (McAuley), HSTU recipe",
        format="csv",
        columns={"user": 0, "item": 1, "rating": 2, "timestamp": 3},
        files=(
            DataFile(
                "interactions",
                mirror=(
                    MirrorFile("amazon-books/ratings_Books.csv"),
                    MirrorFile("amazon-books/ratings_Books.csv.gz"),
                ),
                url="http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/ratings_Books.csv",
            ),
        ),
        # HSTU: item >= 5 and user >= 5 counted once on the raw data, remap, drop sequences < 5.
        # Not reproduced here (no copy of the file): whether HSTU counts items of dropped
        # short sequences is unverified, so a mismatch only warns.
        published=Published(items=695_762, verified=False),
        recipe={
            "min_user_count": 5,
            "min_item_count": 5,
            "kcore_mode": "single_pass",
            "min_seq_len": 5,
        },
    )
)


def _s3rec(
    name: str,
    stem: str,
    folder: str,
    sha: str,
    published: Published,
    desc: str,
    time: tuple[str, str, str] | None = None,
) -> DatasetSpec:
    files = [
        DataFile(
            "interactions",
            mirror=(MirrorFile(f"{folder}/{stem}.txt", sha256=sha),),
            url=f"{_S3REC}/{stem}.txt",
            sha256=sha,
        )
    ]
    if time is not None:
        path, url, tsha = time
        files.append(DataFile("times", (MirrorFile(path, sha256=tsha),), url=url, sha256=tsha))
    return DatasetSpec(name, desc, "s3rec", tuple(files), published)


_BEAUTY_TIME_SHA = "4e6a6e30f9dba1985ad9adae79a891df6b403e2132f0422a6f6e88f67d1fcc75"
register(
    _s3rec(
        "amazon-beauty",
        "Beauty",
        "amazon-beauty",
        "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8",
        Published(22_363, 12_101, 198_502),
        "Amazon Beauty 5-core (S3-Rec) with aligned day-granularity timestamps",
        time=(
            "amazon-beauty/Beauty_time.txt",
            f"{_TICOSEREC}/Beauty/Beauty_time_org_rank.txt",
            _BEAUTY_TIME_SHA,
        ),
    )
)
register(
    _s3rec(
        "amazon-toys",
        "Toys_and_Games",
        "amazon-toys",
        "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
        Published(19_412, 11_924, 167_597),
        "Amazon Toys and Games 5-core (S3-Rec), no timestamps",
    )
)
register(
    _s3rec(
        "lastfm",
        "LastFM",
        "lastfm",
        "9ded486adb5b0fe9dc761950afa0a9a05e93ff018992e0c52bf11afec529f802",
        Published(1_090, 3_646, 52_551),
        "LastFM HetRec 2011 (S3-Rec), no timestamps",
    )
)

register(
    DatasetSpec(
        name="amazon-videogames",
        description="Amazon Video Games as preprocessed by SASRec ('Games'), no timestamps",
        format="sasrec",
        files=(
            DataFile(
                "interactions",
                mirror=(
                    MirrorFile(
                        "amazon-videogames-sasrec/Video.txt.gz",
                        sha256="ece9a039eb630067530b75dbe3d2e190e0bfea11c2823d367302b5ac35719c19",
                    ),
                ),
                url=f"{_SASREC}/Video.txt",
                sha256="b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651",
            ),
        ),
        published=Published(31_013, 23_715, 287_107),
    )
)

register(
    DatasetSpec(
        name="amazon-beauty-bert4rec",
        description="Amazon Beauty as preprocessed by BERT4Rec (not 5-core), no timestamps",
        format="sasrec",
        files=(
            DataFile(
                "interactions",
                mirror=(
                    MirrorFile(
                        "amazon-beauty-bert4rec/beauty.txt.gz",
                        sha256="f07a9b8df89e6f9d1158ca76b1b9818680fb9701625c2ad80f6ef99446113f43",
                    ),
                ),
                url=f"{_BERT4REC}/beauty.txt",
                sha256="f480b7a7403852342ffd8f9809bb30697dd669be31813d0e204b698fec86ef49",
            ),
        ),
        published=Published(40_226, 54_542, 353_962),
    )
)


# ---------------------------------------------------------------- titles (side information)


def item_titles(ds: Any) -> dict[str, str]:
    """Raw item id -> title for MovieLens datasets whose side files are in the mirror.

    ``ml-1m`` uses ``movies.dat``; ``ml-1m-sasrec`` maps its ids back to MovieIDs through
    ``sas_to_original_items.txt`` first; ``ml-100k`` uses ``u.item``. Anything else, or a
    missing file, gives an empty dict (titles are a nicety, never required).
    """
    mirror = os.environ.get("RECSCALE_DATA_MIRROR")
    if not mirror:
        return {}
    root = Path(mirror)
    try:
        if ds.name in ("ml-1m", "ml-1m-sasrec"):
            titles = _split_file(root / "ml-1m/raw/movies.dat", "::")
            if ds.name == "ml-1m":
                return titles
            sas = _split_file(root / "ml-1m/sasrec/sas_to_original_items.txt", " ")
            return {k: titles[v] for k, v in sas.items() if v in titles}
        if ds.name == "ml-100k":
            return _split_file(root / "ml-100k/u.item", "|")
    except OSError:
        return {}
    return {}


def _split_file(path: Path, sep: str) -> dict[str, str]:
    """First field -> second field of each line (latin-1, as GroupLens ships them)."""
    out = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.split(sep)
        if len(parts) >= 2:
            out[parts[0].strip()] = parts[1].strip()
    return out
