"""Padded torch batches from CSR sequences (see docs/CONTRACTS.md).

Batches are built with one numpy gather per batch (no per-user Python loop), padded
on the right to the longest sequence in the batch rather than to ``max_len``, and
returned as CPU tensors.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recscale.data.dataset import SequenceDataset, ranges
from recscale.data.splits import EvalSet

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class Batch:
    """A training batch.

    Attributes:
        items: ``long [B, N]`` input item ids, 0 = padding.
        targets: ``long [B, N]`` next item per position, 0 = no target.
        timestamps: ``long [B, N]`` timestamps of ``items`` (0 at padding), or None.
        lengths: ``long [B]`` number of real positions per row.
        ratings: ``float [B, N]`` behaviour value (rating) of each input item, or None.
        target_ratings: ``float [B, N]`` behaviour value of each target, or None.
        segments: ``long [B, N]`` in a packed batch (several users per row), which user of
            its row each position belongs to (1, 2, ...; 0 = padding); None: one user a row.
        positions: ``long [B, N]`` in a packed batch, each position's index within its own
            user's window; None otherwise.
    """

    items: torch.Tensor
    targets: torch.Tensor
    timestamps: torch.Tensor | None
    lengths: torch.Tensor
    ratings: torch.Tensor | None = None
    target_ratings: torch.Tensor | None = None
    segments: torch.Tensor | None = None
    positions: torch.Tensor | None = None


@dataclass(frozen=True)
class EvalBatch:
    """An evaluation batch.

    Attributes:
        items: ``long [B, N]`` last ``max_len`` history items, 0 = padding.
        timestamps: ``long [B, N]`` or None.
        lengths: ``long [B]`` history length per row (after truncation).
        targets: ``long [B]`` held-out item per row.
        rows: ``long [B]`` index of each row in the EvalSet.
        ratings: ``float [B, N]`` behaviour value of each history item, or None.
    """

    items: torch.Tensor
    timestamps: torch.Tensor | None
    lengths: torch.Tensor
    targets: torch.Tensor
    rows: torch.Tensor
    ratings: torch.Tensor | None = None


@dataclass(frozen=True)
class Placement:
    """Where each sequence of a batch goes: row ``row[i]``, columns from ``column[i]`` on, in
    an array of ``shape`` (one sequence a row, or several packed into one); ``order[i]`` is
    its place among its row's sequences (1, 2, ...) and ``fill[r]`` the positions row r uses."""

    row: np.ndarray
    column: np.ndarray
    order: np.ndarray
    fill: np.ndarray
    shape: tuple[int, int]

    @staticmethod
    def one_per_row(lengths: np.ndarray) -> Placement:
        b = len(lengths)
        width = max(int(lengths.max()) if b else 0, 1)
        ones = np.ones(b, dtype=np.int64)
        return Placement(np.arange(b), np.zeros(b, dtype=np.int64), ones, lengths, (b, width))


def pack_rows(lengths: np.ndarray, capacity: int) -> Placement:
    """Sequences of ``lengths`` (each <= ``capacity``) packed into as few rows of
    ``capacity`` positions as first-fit decreasing finds (at most 11/9 of the optimum + 1);
    rows are as wide as the fullest one."""
    if len(lengths) and int(lengths.max()) > capacity:
        raise ValueError(f"a sequence of {int(lengths.max())} does not fit rows of {capacity}")
    row, column, order = (np.zeros(len(lengths), dtype=np.int64) for _ in range(3))
    used = np.zeros(max(len(lengths), 1), dtype=np.int64)  # fill of each row opened so far
    members = np.zeros_like(used)  # sequences in each row so far
    rows = 0
    for i in np.argsort(-lengths, kind="stable"):
        fits = np.flatnonzero(used[:rows] + lengths[i] <= capacity)
        r = int(fits[0]) if len(fits) else rows
        rows = max(rows, r + 1)
        members[r] += 1
        row[i], column[i], order[i] = r, used[r], members[r]
        used[r] += lengths[i]
    return Placement(row, column, order, used[:rows], (rows, max(int(used.max()), 1)))


def _gather(
    ds: SequenceDataset,
    starts: np.ndarray,
    lengths: np.ndarray,
    shift: int = 0,
    place: Placement | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Right-padded ``items[starts + shift + j]`` laid out as ``place`` says (default one
    sequence a row, ``[B, max(lengths)]``), and timestamps and ratings where the dataset has
    them."""
    place = place or Placement.one_per_row(lengths)
    index = ranges(starts + shift, lengths)
    rows = np.repeat(place.row, lengths)
    cols = index - np.repeat(starts + shift - place.column, lengths)
    b, width = place.shape
    items = np.zeros((b, width), dtype=np.int64)
    items[rows, cols] = ds.items[index]
    times = None
    if ds.timestamps is not None:
        times = np.zeros((b, width), dtype=np.int64)
        times[rows, cols] = ds.timestamps[index]
    ratings = None
    if ds.ratings is not None:
        ratings = np.zeros((b, width), dtype=np.float32)
        ratings[rows, cols] = ds.ratings[index]
    return items, times, ratings


def _tensor(a: np.ndarray | None) -> torch.Tensor | None:
    # torch is imported here, not at module level, so `import recscale.data` stays light
    # for commands that only read and describe data.
    import torch

    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))


def train_batches(
    ds: SequenceDataset,
    max_len: int,
    batch_size: int,
    seed: int,
    epoch: int,
    rank: int = 0,
    world_size: int = 1,
    bucket_batches: int | None = None,
    pack: bool = False,
) -> Iterator[Batch]:
    """Shuffled training batches over users with at least 2 interactions.

    For each sequence s: window = s[-(max_len+1):], items = window[:-1], targets = window[1:].
    Users are shuffled by ``(seed, epoch)`` and cut into global chunks of
    ``batch_size * world_size``; rank r takes rows r, r + world_size, ... of each chunk.
    So the ranks partition the users exactly, every rank yields the same number of
    batches (ceil(users / (batch_size * world_size))), the union of the ranks' k-th
    batches is the k-th batch of a single process with ``batch_size * world_size``, and
    two consecutive batches of size B hold the same users as one batch of size 2B
    (gradient accumulation is exact). Only the last chunk can be short; when it has
    fewer users than ranks, the remaining ranks get an empty batch (B = 0) to stay in
    lockstep.

    With ``bucket_batches`` = k, batches are length-bucketed: each run of k global chunks
    of the shuffled order is sorted by window length and cut again, and the full chunks
    are shuffled, so a batch holds users of similar length and pads little (batches are
    padded to their longest row). Every user still comes once per epoch, in an order fixed
    by ``(seed, epoch)``; gradient accumulation is then no longer exactly a larger batch.

    With ``pack``, the same users per batch are packed into rows of ``max_len`` positions
    (:func:`pack_rows`), with ``segments`` and ``positions`` saying who is where: a model
    that keeps each user to its own segment computes exactly what it computes on the
    padded batch, on a fraction of the positions when most users are short.
    """
    if max_len < 1 or batch_size < 1:
        raise ValueError("max_len and batch_size must be positive")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} not in [0, {world_size})")
    lengths = ds.lengths
    eligible = np.flatnonzero(lengths >= 2)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(eligible)
    chunk = batch_size * world_size
    if bucket_batches:
        order = length_bucketed(
            order, np.minimum(lengths[order], max_len + 1), chunk, bucket_batches, rng
        )
    for k in range(0, len(order), chunk):
        users = order[k : k + chunk][rank::world_size]
        window = np.minimum(lengths[users], max_len + 1)
        starts = ds.offsets[users + 1] - window
        n = window - 1
        place = pack_rows(n, max_len) if pack else None
        items, times, ratings = _gather(ds, starts, n, place=place)
        targets, _, target_ratings = _gather(ds, starts, n, shift=1, place=place)
        segments = positions = None
        if place is not None:
            segments, positions = _segments(place, n)
        yield Batch(
            _tensor(items),
            _tensor(targets),
            _tensor(times),
            _tensor(n if place is None else place.fill),
            _tensor(ratings),
            _tensor(target_ratings),
            _tensor(segments),
            _tensor(positions),
        )


def _segments(place: Placement, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segment ids (``place.order``; 0 = padding) and positions within each segment, as
    ``[B, N]`` arrays."""
    rows = np.repeat(place.row, lengths)
    within = ranges(np.zeros(len(lengths), dtype=np.int64), lengths)
    cols = np.repeat(place.column, lengths) + within
    segments = np.zeros(place.shape, dtype=np.int64)
    positions = np.zeros(place.shape, dtype=np.int64)
    segments[rows, cols] = np.repeat(place.order, lengths)
    positions[rows, cols] = within
    return segments, positions


def length_bucketed(
    order: np.ndarray, windows: np.ndarray, chunk: int, k: int, rng: np.random.Generator
) -> np.ndarray:
    """``order`` rearranged so that each ``chunk`` holds users of similar window length:
    sorted (longest first) within runs of ``k`` chunks, then the full chunks shuffled; a
    short last chunk stays last."""
    if len(order) == 0:
        return order
    span = chunk * k
    ranked = np.concatenate(
        [
            order[i : i + span][np.argsort(-windows[i : i + span], kind="stable")]
            for i in range(0, len(order), span)
        ]
    )
    full = len(ranked) // chunk
    chunks = ranked[: full * chunk].reshape(full, chunk)[rng.permutation(full)]
    return np.concatenate([chunks.reshape(-1), ranked[full * chunk :]])


def eval_batches(
    eval_set: EvalSet,
    max_len: int,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    by_length: bool = False,
) -> Iterator[EvalBatch]:
    """Batches of EvalSet rows (rank ``r`` takes rows r, r + world_size, ...), in row order,
    or with ``by_length`` longest window first, so that a batch pads little (each batch
    carries its rows' indices).

    The history window is the last ``max_len`` items of each history.
    """
    if max_len < 1 or batch_size < 1:
        raise ValueError("max_len and batch_size must be positive")
    hist = eval_set.histories
    rows_all = np.arange(len(eval_set))
    if by_length:
        window = np.minimum(hist.lengths, max_len)
        rows_all = rows_all[np.argsort(-window, kind="stable")]
    rows_all = rows_all[rank::world_size]
    for k in range(0, len(rows_all), batch_size):
        rows = rows_all[k : k + batch_size]
        n = np.minimum(hist.lengths[rows], max_len)
        starts = hist.offsets[rows + 1] - n
        items, times, ratings = _gather(hist, starts, n)
        yield EvalBatch(
            items=_tensor(items),
            timestamps=_tensor(times),
            lengths=_tensor(n.astype(np.int64)),
            targets=_tensor(eval_set.targets[rows].astype(np.int64)),
            rows=_tensor(rows.astype(np.int64)),
            ratings=_tensor(ratings),
        )


def replace_inputs(
    batch: Batch, rate: float, num_items: int, generator: torch.Generator | None = None
) -> Batch:
    """Training-time noise: each real input item replaced by a uniform random item with
    probability ``rate``; targets stay clean (the model learns to read through noise)."""
    from dataclasses import replace

    import torch

    if rate <= 0:
        return batch
    items = batch.items
    hit = (torch.rand(items.shape, generator=generator) < rate) & (items != 0)
    noise = torch.randint(1, num_items + 1, items.shape, generator=generator)
    return replace(batch, items=torch.where(hit, noise, items))


def to_device(batch: Batch | EvalBatch, device: torch.device | str, non_blocking: bool = False):
    """The same batch with every tensor moved to ``device`` (None stays None)."""
    from dataclasses import fields, replace

    moved = {
        f.name: (v.to(device, non_blocking=non_blocking) if v is not None else None)
        for f in fields(batch)
        for v in [getattr(batch, f.name)]
    }
    return replace(batch, **moved)
