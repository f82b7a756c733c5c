"""Helpers for the data tests: small datasets built from Python lists, small files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from recscale.data.dataset import SequenceDataset


def make_dataset(
    seqs: list[list[int]], times: list[list[int]] | None = None, name: str = "toy"
) -> SequenceDataset:
    """A dataset whose user u has items ``seqs[u]`` (ids >= 1)."""
    lengths = [len(s) for s in seqs]
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.array([i for s in seqs for i in s], dtype=np.int64)
    num_items = int(items.max()) if len(items) else 0
    return SequenceDataset(
        name=name,
        offsets=offsets,
        items=items,
        num_items=num_items,
        user_ids=np.array([str(u + 1) for u in range(len(seqs))]),
        item_ids=np.array([""] + [str(i) for i in range(1, num_items + 1)]),
        timestamps=None
        if times is None
        else np.array([t for s in times for t in s], dtype=np.int64),
    )


@pytest.fixture
def toy() -> SequenceDataset:
    return make_dataset(
        [[1, 2, 3, 4], [5, 6], [7], [2, 4, 6, 8, 1]], [[1, 2, 3, 4], [5, 6], [7], [1, 3, 5, 7, 9]]
    )


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path
