"""The dataset catalogue: every registered dataset, its files and its published figures.

Each entry names the official URL (and sha256 where a trusted hash is known) of every file,
the copies a mirror may hold, the reader format and the default recipe. Side files (item
metadata beside the interactions: titles, genres, attributes) are declared at the end, in
the same terms, and read by :mod:`recscale.data.attributes` and :mod:`recscale.data.titles`.
Nothing here touches the disk; :mod:`recscale.data.sources` finds the files.
"""

from __future__ import annotations

from typing import Any

from recscale.data.specs import DataFile, DatasetSpec, MirrorFile, Published
from recscale.registry import Registry

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


def dataset_names() -> list[str]:
    """Names of the registered datasets, sorted (for help texts and error messages)."""
    return DATASETS.names()


# ---------------------------------------------------------------- the datasets

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


# ---------------------------------------------------------------- side files


def _side(path: str, url: str, sha: str, member: str | None = None) -> DataFile:
    # For an archive only the member's sha256 is known (it checks the mirror copy).
    return DataFile("side", (MirrorFile(path, sha256=sha),), url, None if member else sha, member)


ML1M_MOVIES = _side(
    "ml-1m/raw/movies.dat",
    f"{_GL}/ml-1m.zip",
    "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9",
    member="ml-1m/movies.dat",
)
ML1M_SASREC_ITEMS = DataFile(
    "side",
    (
        MirrorFile(
            "ml-1m/sasrec/sas_to_original_items.txt",
            sha256="9ae42c23af0b0fe2f189b9d5acc6cf3936bffe1a9568390cf5d100c0c1b1fca1",
        ),
    ),
    None,  # derived by matching SASRec's file to ratings.dat; see PROVENANCE.md
)
ML100K_ITEMS = _side(
    "ml-100k/u.item",
    f"{_GL}/ml-100k.zip",
    "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    member="ml-100k/u.item",
)
ML100K_GENRES = _side(
    "ml-100k/u.genre",
    f"{_GL}/ml-100k.zip",
    "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
    member="ml-100k/u.genre",
)
# S3-Rec ``<stem>_item2attributes.json`` per dataset.
S3REC_ATTRIBUTES: dict[str, DataFile] = {
    name: _side(f"{name}/{stem}_item2attributes.json", f"{_S3REC}/{stem}_item2attributes.json", sha)
    for name, stem, sha in (
        (
            "amazon-beauty",
            "Beauty",
            "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4",
        ),
        (
            "amazon-toys",
            "Toys_and_Games",
            "d371acd25101eedac04afc727626464b7acec770c4eda708705d51eb76eb1ad0",
        ),
        ("lastfm", "LastFM", "a4ccd678dc9ff6d43fe5073f491db5c9b02eb98dfa4f8c0382913a784be217ef"),
    )
}
