"""Item titles (side information) for the datasets that ship them: MovieLens.

The side files are the ones item attributes read (:data:`recscale.data.catalogue.ML1M_MOVIES`
and friends), found by the same resolver: ``data_dir``, mirror, download cache. Titles are a
nicety, never required, so they never start a download and a missing file gives no titles.
"""

from __future__ import annotations

from pathlib import Path

from recscale.data.catalogue import ML1M_MOVIES, ML1M_SASREC_ITEMS, ML100K_ITEMS, get_spec
from recscale.data.dataset import SequenceDataset
from recscale.data.sources import read_side
from recscale.data.specs import SideSource
from recscale.errors import RecscaleError
from recscale.registry import Registry

# raw item id -> title
Titles = dict[str, str]


def _split_file(path: Path, sep: str) -> dict[str, str]:
    """First field -> second field of each line (latin-1, as GroupLens ships them)."""
    out = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.split(sep)
        if len(parts) >= 2:
            out[parts[0].strip()] = parts[1].strip()
    return out


def _movies_dat(paths: list[Path]) -> Titles:
    """``MovieID::Title::Genres`` -> title."""
    return _split_file(paths[0], "::")


def _ml1m_sasrec(paths: list[Path]) -> Titles:
    """SASRec's renumbered items mapped back to MovieIDs, then to their titles."""
    titles = _movies_dat(paths[:1])
    sas = _split_file(paths[1], " ")
    return {k: titles[v] for k, v in sas.items() if v in titles}


def _u_item(paths: list[Path]) -> Titles:
    """ML-100K ``u.item``: ``id|title|...`` -> title."""
    return _split_file(paths[0], "|")


TITLES: Registry[SideSource[Titles]] = Registry("title source")
TITLES.register("ml-1m")(SideSource((ML1M_MOVIES,), _movies_dat))
TITLES.register("ml-1m-sasrec")(SideSource((ML1M_MOVIES, ML1M_SASREC_ITEMS), _ml1m_sasrec))
TITLES.register("ml-100k")(SideSource((ML100K_ITEMS,), _u_item))


def item_titles(ds: SequenceDataset, data_dir: str | Path | None = None) -> Titles:
    """Raw item id -> title of ``ds``; empty for a dataset without titles or a missing file.

    ``ml-1m`` uses ``movies.dat``; ``ml-1m-sasrec`` maps its ids back to MovieIDs through
    ``sas_to_original_items.txt`` first; ``ml-100k`` uses ``u.item``.
    """
    if ds.name not in TITLES:
        return {}
    try:
        return read_side(get_spec(ds.name), TITLES.get(ds.name), data_dir, allow_download=False)
    except (RecscaleError, OSError):
        return {}
