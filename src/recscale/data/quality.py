"""Data-quality measures used by the Performance Law (REFERENCES.md §3.4). Pure functions.

- ``apen``: approximate entropy of one sequence, the plain O(K²) reference, written to
  match the Performance Law package: Chebyshev distance on raw item ids, self-matches
  counted, C = 0 replaced by 1e-10, Φ = 0 when there is no template, |Φ(m+1) − Φ(m)|.
- ``apen_batch``: the same per user over each user's last K items, vectorised over users
  of equal length, averaged over users.
- ``shannon_entropy`` (bits), ``lz_entropy_rate`` (the package's ``actual_entropy``,
  n·ln(n)/Σλ_i) and ``compression_ratio`` (zlib on 4-byte big-endian ids).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np

from recscale.data.dataset import SequenceDataset

# Keep each vectorised chunk's [G, K, K] distance tensors around this many elements.
_CHUNK_ELEMENTS = 1 << 22


def apen(seq: np.ndarray | list[int], m: int = 2, r: float = 0.2) -> float:
    """Approximate entropy of one sequence (reference, O(K²) Python loops)."""
    u = [int(x) for x in seq]
    n = len(u)

    def phi(mm: int) -> float:
        count = n - mm + 1
        if count <= 0:
            return 0.0
        templates = [u[i : i + mm] for i in range(count)]
        total = 0.0
        for xi in templates:
            c = (
                sum(
                    1
                    for xj in templates
                    if max(abs(a - b) for a, b in zip(xi, xj, strict=True)) <= r
                )
                / count
            )
            total += math.log(c if c > 0 else 1e-10)
        return total / count

    return abs(phi(m + 1) - phi(m))


def _phi_from_dist(dist: np.ndarray, r: float) -> np.ndarray:
    """``[G, T, T]`` Chebyshev distances -> Φ per row ``[G]``."""
    t = dist.shape[1]
    if t <= 0:
        return np.zeros(dist.shape[0])
    c = (dist <= r).sum(axis=2) / t
    c = np.where(c > 0, c, 1e-10)
    return np.log(c).sum(axis=1) / t


def _apen_equal_length(x: np.ndarray, m: int, r: float) -> np.ndarray:
    """ApEn per row of ``x: [G, n]`` (all sequences of length n)."""
    g, n = x.shape
    out = np.zeros(g)
    if n - m + 1 <= 0 or m < 1:
        return out
    a = np.abs(x[:, :, None] - x[:, None, :])  # [G, n, n] |x_i - x_j|
    t = n - m + 1
    # Chebyshev distance of m-templates: max over the diagonal shifts k < m.
    dm = a[:, :t, :t].copy()
    for k in range(1, m):
        np.maximum(dm, a[:, k : k + t, k : k + t], out=dm)
    phi_m = _phi_from_dist(dm, r)
    if t - 1 <= 0:
        return np.abs(0.0 - phi_m)
    dm1 = np.maximum(dm[:, : t - 1, : t - 1], a[:, m : m + t - 1, m : m + t - 1])
    return np.abs(_phi_from_dist(dm1, r) - phi_m)


def apen_per_user(
    ds: SequenceDataset, m: int = 2, r: float = 0.2, last_k: int | None = 50
) -> np.ndarray:
    """``float64 [U]`` ApEn of each user's last ``last_k`` items (whole sequence when None)."""
    lengths = ds.lengths
    n = lengths if last_k is None else np.minimum(lengths, last_k)
    out = np.zeros(ds.num_users)
    for length in np.unique(n):
        users = np.flatnonzero(n == length)
        step = max(1, _CHUNK_ELEMENTS // max(int(length) ** 2, 1))
        for k in range(0, len(users), step):
            chunk = users[k : k + step]
            starts = ds.offsets[chunk + 1] - length
            x = ds.items[starts[:, None] + np.arange(length)[None, :]]
            out[chunk] = _apen_equal_length(x, m, r)
    return out


def apen_batch(ds: SequenceDataset, m: int = 2, r: float = 0.2, last_k: int | None = 50) -> float:
    """Mean over users of ApEn(m, r) on each user's last ``last_k`` items."""
    if ds.num_users == 0:
        return 0.0
    return float(apen_per_user(ds, m, r, last_k).mean())


def shannon_entropy(values: np.ndarray) -> float:
    """Entropy in bits of the empirical distribution of ``values``."""
    _, counts = np.unique(np.asarray(values), return_counts=True)
    if len(counts) == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def lz_entropy_rate(seq: np.ndarray | list[int]) -> float:
    """Lempel-Ziv entropy-rate estimate n·ln(n)/Σλ_i (the package's ``actual_entropy``).

    λ_i is the length of the shortest substring starting at i not yet discovered; a
    substring that runs to the end without being new counts n − i + 1.
    """
    s = [int(x) for x in seq]
    n = len(s)
    if n == 0:
        return 0.0
    discovered: set[tuple[int, ...]] = set()
    total = 0
    for i in range(n):
        for j in range(i + 1, n + 1):
            sub = tuple(s[i:j])
            if sub not in discovered:
                total += len(sub)
                discovered.add(sub)
                break
            if j == n:
                total += n - i + 1
                discovered.add(sub)
    return n * math.log(n) / total


def compression_ratio(seq: np.ndarray | list[int]) -> float:
    """zlib-compressed size / raw size of the ids as 4-byte big-endian integers."""
    raw = np.asarray(seq, dtype=">u4").tobytes()
    if not raw:
        return 0.0
    return len(zlib.compress(raw)) / len(raw)


def data_quality(
    ds: SequenceDataset, m: int = 2, r: float = 0.2, last_k: int | None = 50, lz_users: int = 1000
) -> dict[str, Any]:
    """All measures for one dataset.

    ``apen`` is averaged over users (last ``last_k`` items each); ``shannon_entropy_bits``
    is the item popularity entropy over all interactions; ``lz_entropy_rate`` is averaged
    over the first ``lz_users`` users' last-K windows (the estimator is a Python loop);
    ``compression_ratio`` is over the concatenated item sequence.
    """
    users = np.arange(min(ds.num_users, lz_users))
    lz = [
        lz_entropy_rate(ds.sequence(int(u))[-last_k:] if last_k else ds.sequence(int(u)))
        for u in users
    ]
    return {
        "apen": apen_batch(ds, m, r, last_k),
        "apen_m": m,
        "apen_r": r,
        "apen_last_k": last_k,
        "shannon_entropy_bits": shannon_entropy(ds.items),
        "lz_entropy_rate": float(np.mean(lz)) if lz else 0.0,
        "compression_ratio": compression_ratio(ds.items),
    }
