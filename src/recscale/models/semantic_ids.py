"""Semantic IDs: each item becomes a short tuple of codes (TIGER, Rajput et al. 2023).

Residual k-means quantises the items' text embeddings: level 1 clusters the vectors, level 2
clusters what level 1 left over, and so on, so an item's codes read coarse to fine and the
sum of its chosen centroids approximates its vector. Items whose tuples collide get one extra
level that numbers them 0, 1, 2 ... (TIGER's fix), so every tuple names exactly one item.

A generative retriever (models/generative.py) reads a history as the flattened code tokens
of its items and emits the next item's codes one level at a time; :class:`CodeTrie` tells its
beam search which codes continue a prefix that some real item has.

Shapes: ``M`` items, ``E`` embedding width, ``L`` levels (``L'`` after collision resolution).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse
import torch

# Rows of the [rows, k] distance matrix built at once: bounds memory on large catalogues.
_CHUNK = 65536


# ---- residual k-means ---------------------------------------------------------------------


def _assign(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row: x [M, E], centroids [k, E] -> labels [M], sq. dist [M]."""
    labels = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x))
    cc = (centroids * centroids).sum(1)
    for start in range(0, len(x), _CHUNK):
        xs = x[start : start + _CHUNK]
        # ||x||² is the same for every centroid, so the argmin needs only ||c||² - 2 x·c.
        partial = cc[None, :] - 2.0 * xs @ centroids.T
        best = partial.argmin(1)
        labels[start : start + len(xs)] = best
        exact = partial[np.arange(len(xs)), best] + (xs * xs).sum(1)
        dist[start : start + len(xs)] = np.maximum(exact, 0.0)
    return labels, dist


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds [k, E]; uniform draws once every point sits on a seed (duplicates),
    where scipy's ``kmeans2(minit="++")`` would divide by zero."""
    first = int(rng.integers(len(x)))
    chosen = [first]
    d2 = ((x - x[first]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        i = int(rng.choice(len(x), p=d2 / total)) if total > 0 else int(rng.integers(len(x)))
        chosen.append(i)
        d2 = np.minimum(d2, ((x - x[i]) ** 2).sum(1))
    return x[chosen].copy()


def _kmeans(
    x: np.ndarray, k: int, rng: np.random.Generator, iters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's algorithm: x [M, E] -> centroids [k, E], labels [M].

    An empty cluster is re-seeded at the points farthest from their centroids. The labels are
    the final assignment to the returned centroids, and each update sets a centroid to its
    cluster's mean, so the error never exceeds that of the all-zero codebook: adding a level
    never makes the residual worse.
    """
    centroids = _kmeans_pp(x, k, rng)
    labels, dist = _assign(x, centroids)
    for _ in range(iters):
        counts = np.bincount(labels, minlength=k)
        onehot = scipy.sparse.csr_matrix(
            (np.ones(len(x)), (labels, np.arange(len(x)))), shape=(k, len(x))
        )
        sums = np.asarray(onehot @ x)
        filled = counts > 0
        centroids = centroids.copy()
        centroids[filled] = sums[filled] / counts[filled, None]
        empty = np.flatnonzero(~filled)
        if len(empty):
            far = np.argsort(-dist, kind="stable")[: len(empty)]
            centroids[empty] = x[far]
        new_labels, dist = _assign(x, centroids)
        converged = np.array_equal(new_labels, labels) and not len(empty)
        labels = new_labels
        if converged:
            break
    return centroids, labels


@dataclass(frozen=True, eq=False)
class Quantised:
    """Residual codes of M vectors.

    Attributes:
        codes: [M, L] int64, level l's code in 0..k_l-1.
        codebooks: L arrays [k_l, E], the centroids of each level.
    """

    codes: np.ndarray
    codebooks: list[np.ndarray]

    def reconstruct(self) -> np.ndarray:
        """[M, E]: the sum over levels of each item's chosen centroid."""
        out = np.zeros((len(self.codes), self.codebooks[0].shape[1]))
        for level, book in enumerate(self.codebooks):
            out += book[self.codes[:, level]]
        return out

    def reconstruction_error(self, vectors: np.ndarray) -> float:
        """Mean over items and dimensions of the squared error; vectors [M, E]."""
        diff = np.asarray(vectors, dtype=np.float64) - self.reconstruct()
        return float(np.mean(diff * diff))


def residual_kmeans(
    vectors: np.ndarray, levels: int, codebook_size: int, seed: int = 0, iters: int = 20
) -> Quantised:
    """Residual k-means of vectors [M, E] into ``levels`` codes per item.

    Each level has min(codebook_size, M) centroids. Level l draws its seeds from
    ``default_rng([seed, l])``, so the first levels of a deeper run equal a shallower run's
    (the error then falls level by level) and a seed gives the same codes every time.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"vectors must be a non-empty [M, E] array, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("vectors contain NaN or infinite values")
    if min(levels, codebook_size, iters) < 1:
        raise ValueError("levels, codebook_size and iters must be >= 1")
    k = min(codebook_size, len(x))
    residual = x.copy()
    codes, books = [], []
    for level in range(levels):
        centroids, labels = _kmeans(residual, k, np.random.default_rng([seed, level]), iters)
        residual -= centroids[labels]
        codes.append(labels)
        books.append(centroids)
    return Quantised(codes=np.stack(codes, 1), codebooks=books)


# ---- collisions and usage -------------------------------------------------------------------


def _group_ranks(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For codes [M, L]: the rank of each item among the items sharing its tuple (in item
    order) [M], and the size of its group [M]."""
    _, group, sizes = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")  # groups in turn, items in order within each
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    ranks = np.empty(len(codes), dtype=np.int64)
    ranks[order] = np.arange(len(codes)) - starts[group[order]]
    return ranks, sizes[group]


def resolve_collisions(codes: np.ndarray) -> np.ndarray:
    """codes [M, L] -> [M, L + 1]: the extra last level numbers the items that share an
    L-tuple 0, 1, 2 ... in item order, so every row is unique. Its size is the largest group."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"codes must be a non-empty [M, L] array, got shape {codes.shape}")
    ranks, _ = _group_ranks(codes)
    return np.concatenate([codes, ranks[:, None]], axis=1)


def code_usage(codes: np.ndarray, level_sizes: tuple[int, ...] | None = None) -> dict[str, Any]:
    """How well codes [M, L] (before collision resolution) use their codebooks.

    Returns plain JSON values: per level ``used`` (distinct codes) and ``perplexity``
    (exp of the entropy of the code distribution: k for a uniform codebook, 1 for one code),
    ``collision_share`` (items whose L-tuple some other item shares) and
    ``max_collision_group`` (the largest set of items with one tuple; 1 = none collide).
    With ``level_sizes`` also each level's ``codebook_size`` and ``utilisation``.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"codes must be a non-empty [M, L] array, got shape {codes.shape}")
    used, perplexity = [], []
    for column in codes.T:
        _, counts = np.unique(column, return_counts=True)
        p = counts / counts.sum()
        used.append(len(counts))
        perplexity.append(float(np.exp(-(p * np.log(p)).sum())))
    _, group_sizes = _group_ranks(codes)
    usage: dict[str, Any] = {
        "items": len(codes),
        "levels": codes.shape[1],
        "used": used,
        "perplexity": perplexity,
        "collision_share": float(np.mean(group_sizes > 1)),
        "max_collision_group": int(group_sizes.max()),
    }
    if level_sizes is not None:
        usage["codebook_size"] = [int(s) for s in level_sizes]
        usage["utilisation"] = [u / s for u, s in zip(used, level_sizes, strict=True)]
    return usage


# ---- the item <-> code tables ---------------------------------------------------------------


def item_tokens(table: torch.Tensor, offsets: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """Items [B, N] -> code tokens [B, N * L'], item by item, coarse level first.

    table: [num_items + 1, L'] codes (row 0 padding); offsets: [L'] first token id of each
    level minus one. A code c of level l is token 1 + offset_l + c; padding items give 0s.
    """
    tokens = table[items] + 1 + offsets
    tokens = tokens * (items != 0).unsqueeze(-1).to(tokens.dtype)
    return tokens.flatten(-2)


@dataclass(frozen=True, eq=False)
class CodeTrie:
    """The valid code prefixes, level by level, as sorted tensors (compact and searchable).

    A prefix of level l (the first l codes of some item) has an id p_l; the empty prefix is
    p_0 = 0. ``keys[l]`` holds ``p_l * level_sizes[l] + c`` for every valid (prefix, code)
    pair, sorted; ``children[l]`` the id of the prefix it extends to, at the last level the
    item id.
    """

    keys: list[torch.Tensor]
    children: list[torch.Tensor]
    level_sizes: tuple[int, ...]

    @classmethod
    def build(cls, codes: np.ndarray, level_sizes: tuple[int, ...]) -> CodeTrie:
        """codes: [num_items + 1, L'] with row 0 padding; the rows 1.. must be unique."""
        items = np.arange(1, len(codes), dtype=np.int64)
        prefix = np.zeros(len(items), dtype=np.int64)
        keys, children = [], []
        for level, size in enumerate(level_sizes):
            key = prefix * size + codes[1:, level]
            unique, prefix = np.unique(key, return_inverse=True)
            prefix = prefix.reshape(-1)
            keys.append(torch.from_numpy(unique))
            if level + 1 < len(level_sizes):
                children.append(torch.arange(len(unique), dtype=torch.int64))
            else:
                child = np.zeros(len(unique), dtype=np.int64)
                child[prefix] = items  # unique tuples: one item per full prefix
                children.append(torch.from_numpy(child))
        return cls(keys=keys, children=children, level_sizes=tuple(level_sizes))

    def to(self, device: torch.device | str) -> CodeTrie:
        return CodeTrie(
            [k.to(device) for k in self.keys],
            [c.to(device) for c in self.children],
            self.level_sizes,
        )

    def expand(self, level: int, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix ids [R] of ``level`` -> allowed [R, k_l] bool, child [R, k_l] int64.

        ``child`` is the extended prefix's id (the item id at the last level), 0 where the
        code is not allowed. An id that names no prefix allows nothing.
        """
        size = self.level_sizes[level]
        keys = self.keys[level]
        query = prefix[:, None] * size + torch.arange(size, device=prefix.device)
        at = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
        allowed = keys[at] == query
        child = torch.where(allowed, self.children[level][at], torch.zeros_like(at))
        return allowed, child


@dataclass(frozen=True, eq=False)
class SemanticIds:
    """Every item's code tuple and the token layout a generative model reads.

    Attributes:
        codes: [num_items + 1, L'] int64; row i holds item i's codes, row 0 (padding) zeros.
        level_sizes: codes of level l lie in 0..level_sizes[l]-1.
    """

    codes: np.ndarray
    level_sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        codes = self.codes
        if codes.ndim != 2 or len(codes) < 2 or codes.shape[1] != len(self.level_sizes):
            raise ValueError(
                f"codes must be [num_items + 1, {len(self.level_sizes)}] with at least one item,"
                f" got shape {codes.shape}"
            )
        if codes.dtype != np.int64 or codes[0].any():
            raise ValueError("codes must be int64 with row 0 (padding) all zeros")
        if (codes < 0).any() or (codes >= np.array(self.level_sizes)).any():
            raise ValueError(f"codes must lie within level_sizes {self.level_sizes}")
        if len(np.unique(codes[1:], axis=0)) != len(codes) - 1:
            raise ValueError("two items share a code tuple (resolve_collisions first)")

    @property
    def num_items(self) -> int:
        return len(self.codes) - 1

    @property
    def num_levels(self) -> int:
        return len(self.level_sizes)

    @property
    def offsets(self) -> tuple[int, ...]:
        """Level l's tokens are 1 + offsets[l] .. offsets[l] + level_sizes[l]."""
        return tuple(int(x) for x in np.cumsum((0, *self.level_sizes[:-1])))

    @property
    def vocab_size(self) -> int:
        """Token 0 (padding) plus every level's codes."""
        return 1 + sum(self.level_sizes)

    def token_ids(self, items: torch.Tensor) -> torch.Tensor:
        """Item ids [B, N] -> code tokens [B, N * L'] (see :func:`item_tokens`)."""
        table = torch.from_numpy(self.codes).to(items.device)
        offsets = torch.tensor(self.offsets, device=items.device)
        return item_tokens(table, offsets, items)

    def codes_of_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        """Code tokens [B, N * L'] -> codes [B, N, L'] (padding tokens give -1)."""
        codes = tokens.cpu().numpy().reshape(*tokens.shape[:-1], -1, self.num_levels)
        return np.where(codes == 0, -1, codes - 1 - np.array(self.offsets))

    @cached_property
    def lookup(self) -> dict[tuple[int, ...], int]:
        """Code tuple -> item id."""
        return {tuple(int(c) for c in row): i for i, row in enumerate(self.codes) if i}

    def item_of(self, codes: tuple[int, ...] | np.ndarray) -> int:
        """The item with this code tuple, 0 when none has it."""
        return self.lookup.get(tuple(int(c) for c in codes), 0)

    def trie(self) -> CodeTrie:
        return CodeTrie.build(self.codes, self.level_sizes)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for safetensors (no pickle); :meth:`from_arrays` reads them back."""
        return {"codes": self.codes, "level_sizes": np.array(self.level_sizes, dtype=np.int64)}

    @classmethod
    def from_arrays(cls, arrays: dict[str, Any]) -> SemanticIds:
        codes = np.ascontiguousarray(np.asarray(arrays["codes"]), dtype=np.int64)
        sizes = tuple(int(s) for s in np.asarray(arrays["level_sizes"]).reshape(-1))
        return cls(codes=codes, level_sizes=sizes)


def semantic_ids(
    vectors: np.ndarray, levels: int, codebook_size: int, seed: int = 0, iters: int = 20
) -> tuple[SemanticIds, dict[str, Any]]:
    """Item vectors [num_items, E] (row i-1 is item i) -> (SemanticIds with L' = levels + 1,
    the code usage of the quantiser's levels with the reconstruction error)."""
    quantised = residual_kmeans(vectors, levels, codebook_size, seed=seed, iters=iters)
    resolved = resolve_collisions(quantised.codes)
    sizes = tuple(len(book) for book in quantised.codebooks)
    usage = code_usage(quantised.codes, sizes)
    usage["reconstruction_error"] = quantised.reconstruction_error(vectors)
    level_sizes = (*sizes, int(resolved[:, -1].max()) + 1)
    codes = np.concatenate([np.zeros((1, resolved.shape[1]), dtype=np.int64), resolved])
    return SemanticIds(codes=codes, level_sizes=level_sizes), usage
