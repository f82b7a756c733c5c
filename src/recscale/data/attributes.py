"""Item side information: attribute names per item, and the item feature table models read.

Attributes come from each dataset's side files (ML-1M ``movies.dat`` genres, ML-100K
``u.item`` genre flags, the S3-Rec ``*_item2attributes.json`` maps), declared in
:mod:`recscale.data.catalogue` and found by the resolver of interaction files
(``data_dir``, mirror, download cache, official URL). The feature table a model reads
is ``int64 [num_items + 1, F]``: row ``i`` lists item ``i``'s feature ids (1-based,
0 = none), so a feature kind is a namespace of ids and several kinds (attributes, the
item's domain) sit side by side in one table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recscale.data.catalogue import (
    ML1M_MOVIES,
    ML1M_SASREC_ITEMS,
    ML100K_GENRES,
    ML100K_ITEMS,
    S3REC_ATTRIBUTES,
    get_spec,
)
from recscale.data.dataset import SequenceDataset
from recscale.data.sources import read_side
from recscale.data.specs import SideSource
from recscale.errors import RecscaleError
from recscale.registry import Registry

# raw item id -> attribute names
Attributes = dict[str, list[str]]
# The side files of one dataset and how to read item attributes from them.
AttributeSource = SideSource[Attributes]

ATTRIBUTES: Registry[AttributeSource] = Registry("item-attribute source")


def _lines(path: Path) -> list[str]:
    # GroupLens side files are latin-1.
    return path.read_text(encoding="latin-1").splitlines()


def _movies_dat(paths: list[Path]) -> Attributes:
    """``MovieID::Title::Genre|Genre`` -> genres."""
    out = {}
    for n, line in enumerate(_lines(paths[0]), start=1):
        parts = line.split("::")
        if len(parts) != 3:
            raise RecscaleError(f"{paths[0]}:{n}: expected MovieID::Title::Genres, got {line!r}")
        out[parts[0]] = parts[2].split("|")
    return out


def _ml1m_sasrec(paths: list[Path]) -> Attributes:
    """SASRec's renumbered items mapped back to MovieIDs, then to their genres."""
    genres = _movies_dat(paths[:1])
    out = {}
    for n, line in enumerate(_lines(paths[1]), start=1):
        parts = line.split()
        if len(parts) != 2:
            raise RecscaleError(f"{paths[1]}:{n}: expected 'sasrec_id movie_id', got {line!r}")
        out[parts[0]] = genres.get(parts[1], [])
    return out


def _u_item(paths: list[Path]) -> Attributes:
    """ML-100K ``u.item``: id|title|date|video date|url|19 genre flags (names from u.genre)."""
    names = [line.split("|")[0] for line in _lines(paths[1]) if line.strip()]
    out = {}
    for n, line in enumerate(_lines(paths[0]), start=1):
        parts = line.split("|")
        flags = parts[5:]
        if len(flags) != len(names):
            raise RecscaleError(
                f"{paths[0]}:{n}: expected {len(names)} genre flags after 5 fields, "
                f"got {len(flags)}"
            )
        out[parts[0]] = [g for g, f in zip(names, flags, strict=True) if f.strip() == "1"]
    return out


def _item2attributes(paths: list[Path]) -> Attributes:
    """S3-Rec ``{item_id: [attribute ids]}``."""
    expected = "expected a JSON object item_id -> [attribute ids]"
    try:
        data = json.loads(paths[0].read_bytes().decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise RecscaleError(f"{paths[0]}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RecscaleError(f"{paths[0]}: {expected}")
    bad = next((k for k, v in data.items() if not isinstance(v, list)), None)
    if bad is not None:
        raise RecscaleError(f"{paths[0]}: item {bad!r} has {data[bad]!r}; {expected}")
    return {str(k): [str(a) for a in v] for k, v in data.items()}


ATTRIBUTES.register("ml-1m")(SideSource((ML1M_MOVIES,), _movies_dat))
ATTRIBUTES.register("ml-1m-sasrec")(SideSource((ML1M_MOVIES, ML1M_SASREC_ITEMS), _ml1m_sasrec))
ATTRIBUTES.register("ml-100k")(SideSource((ML100K_ITEMS, ML100K_GENRES), _u_item))
for _name, _file in S3REC_ATTRIBUTES.items():
    ATTRIBUTES.register(_name)(SideSource((_file,), _item2attributes))


def item_attributes(name: str, data_dir: str | Path | None = None) -> Attributes:
    """Raw item id -> attribute names of registered dataset ``name``."""
    source = ATTRIBUTES.get(name)
    return read_side(get_spec(name), source, data_dir, allow_download=True)


# ---------------------------------------------------------------- the feature table

FEATURE_KINDS = ("attributes", "domain")


@dataclass(frozen=True)
class ItemFeatures:
    """``table [num_items + 1, F]`` feature ids (0 = none) and the name of every id (1-based)."""

    table: np.ndarray
    names: tuple[str, ...]

    @property
    def vocab_size(self) -> int:
        return len(self.names)


def item_features(
    ds: SequenceDataset, kinds: Sequence[str], data_dir: str | Path | None = None
) -> ItemFeatures:
    """The feature table of ``ds`` for the given kinds, in order.

    ``attributes`` reads each source dataset's side files (merged datasets: per domain, with
    attribute names prefixed by the domain so equal ids of two catalogues stay apart);
    ``domain`` gives each item its domain (a merged dataset's ``item_domains``).
    """
    unknown = [k for k in kinds if k not in FEATURE_KINDS]
    if unknown:
        raise RecscaleError(
            f"data.item_features: unknown kind(s) {unknown}; allowed: {list(FEATURE_KINDS)}"
        )
    lists: list[list[str]] = [[] for _ in range(ds.num_items + 1)]
    for kind in kinds:
        per_item = _attribute_lists(ds, data_dir) if kind == "attributes" else _domain_lists(ds)
        for i in range(1, ds.num_items + 1):
            lists[i].extend(per_item[i])
    names = sorted({n for row in lists for n in row})
    index = {n: k for k, n in enumerate(names, start=1)}
    width = max((len(row) for row in lists), default=0)
    table = np.zeros((ds.num_items + 1, max(width, 1)), dtype=np.int64)
    for i, row in enumerate(lists):
        table[i, : len(row)] = [index[n] for n in row]
    return ItemFeatures(table, tuple(names))


def _attribute_lists(ds: SequenceDataset, data_dir: str | Path | None) -> list[list[str]]:
    item_ids = ds.item_ids.astype(str)
    out: list[list[str]] = [[] for _ in range(ds.num_items + 1)]
    if ds.domain_names:
        domain_attrs = {d: item_attributes(d, data_dir) for d in ds.domain_names}
        for i in range(1, ds.num_items + 1):
            domain, raw = item_ids[i].split(":", 1)
            out[i] = [f"{domain}:{a}" for a in domain_attrs[domain].get(raw, [])]
        return out
    if ds.name not in ATTRIBUTES:
        raise RecscaleError(
            f"dataset {ds.name!r} has no item attributes; datasets with attributes: "
            f"{', '.join(ATTRIBUTES.names())}"
        )
    attrs = item_attributes(ds.name, data_dir)
    for i in range(1, ds.num_items + 1):
        out[i] = [f"attr:{a}" for a in attrs.get(item_ids[i], [])]
    return out


def _domain_lists(ds: SequenceDataset) -> list[list[str]]:
    if ds.item_domains is None:
        raise RecscaleError(
            f"dataset {ds.name!r} has one domain; the 'domain' feature needs merged datasets "
            "(data.name: a+b)"
        )
    return [[] if d == 0 else [f"domain:{ds.domain_names[d - 1]}"] for d in ds.item_domains]
