"""Residual k-means semantic IDs: the error falls per level, every item gets its own tuple."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from recscale.models.semantic_ids import (
    SemanticIds,
    code_usage,
    residual_kmeans,
    resolve_collisions,
    semantic_ids,
)


def _mixture(items: int = 300, dim: int = 16, clusters: int = 12, seed: int = 0) -> np.ndarray:
    """Gaussian-mixture vectors [items, dim], like text embeddings of a few topics."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * 3.0
    return centres[rng.integers(clusters, size=items)] + rng.normal(size=(items, dim))


def _assert_unique(codes: np.ndarray) -> None:
    assert len(np.unique(codes, axis=0)) == len(codes)


def test_reconstruction_error_falls_with_every_level() -> None:
    vectors = _mixture()
    errors = [
        residual_kmeans(vectors, levels, codebook_size=8).reconstruction_error(vectors)
        for levels in (1, 2, 3)
    ]
    assert errors[0] > errors[1] > errors[2] > 0.0
    assert errors[0] < float(np.mean((vectors - vectors.mean(0)) ** 2))


def test_codes_lie_in_range_and_a_seed_fixes_them() -> None:
    vectors = _mixture()
    q = residual_kmeans(vectors, levels=3, codebook_size=8, seed=3)
    assert q.codes.shape == (300, 3) and q.codes.dtype == np.int64
    assert q.codes.min() >= 0 and q.codes.max() < 8
    assert [book.shape for book in q.codebooks] == [(8, 16)] * 3
    again = residual_kmeans(vectors, levels=3, codebook_size=8, seed=3)
    np.testing.assert_array_equal(q.codes, again.codes)
    np.testing.assert_allclose(q.reconstruct(), again.reconstruct())


def test_codebook_is_clamped_to_the_number_of_items() -> None:
    vectors = _mixture(items=5)
    q = residual_kmeans(vectors, levels=2, codebook_size=64)
    assert [len(book) for book in q.codebooks] == [5, 5]
    # five centroids for five points: level 1 already reconstructs them exactly
    assert q.reconstruction_error(vectors) < 1e-12


def test_resolve_collisions_numbers_each_group_in_item_order() -> None:
    codes = np.array([[0, 1], [0, 1], [2, 0], [0, 1], [2, 0], [1, 1]])
    resolved = resolve_collisions(codes)
    np.testing.assert_array_equal(resolved[:, :2], codes)
    np.testing.assert_array_equal(resolved[:, 2], [0, 1, 0, 2, 1, 0])
    _assert_unique(resolved)


def test_every_item_gets_a_unique_tuple_even_for_identical_vectors() -> None:
    distinct = _mixture(items=20)
    vectors = np.repeat(distinct, 15, axis=0)  # 300 items, only 20 distinct vectors
    sids, usage = semantic_ids(vectors, levels=2, codebook_size=8)
    _assert_unique(sids.codes[1:])
    assert usage["max_collision_group"] >= 15 and usage["collision_share"] == 1.0
    assert sids.level_sizes[-1] == usage["max_collision_group"]
    assert (sids.codes < np.array(sids.level_sizes)).all()

    plain, plain_usage = semantic_ids(_mixture(), levels=3, codebook_size=8)
    _assert_unique(plain.codes[1:])
    assert plain.level_sizes[:3] == (8, 8, 8)
    assert plain.level_sizes[3] == plain_usage["max_collision_group"]


def test_code_usage_values_are_sane_and_plain_json() -> None:
    q = residual_kmeans(_mixture(), levels=2, codebook_size=8)
    usage = code_usage(q.codes, (8, 8))
    json.dumps(usage)
    assert all(1 <= used <= 8 for used in usage["used"])
    assert all(
        1.0 <= p <= u + 1e-9 for p, u in zip(usage["perplexity"], usage["used"], strict=True)
    )
    assert 0.0 <= usage["collision_share"] <= 1.0
    assert all(0.0 < share <= 1.0 for share in usage["utilisation"])

    unique = code_usage(np.array([[0, 0], [0, 1], [1, 0], [1, 1]]))
    assert unique["collision_share"] == 0.0 and unique["max_collision_group"] == 1
    assert unique["perplexity"] == pytest.approx([2.0, 2.0])
    colliding = code_usage(np.array([[0, 0], [0, 0], [1, 0], [0, 1]]))
    assert colliding["collision_share"] == 0.5 and colliding["max_collision_group"] == 2
    assert colliding["used"] == [2, 2]


def test_token_ids_round_trip_to_items() -> None:
    sids, _ = semantic_ids(_mixture(items=60), levels=2, codebook_size=4)
    assert sids.codes.shape == (61, 3) and not sids.codes[0].any()
    assert sids.vocab_size == 1 + sum(sids.level_sizes)
    items = torch.tensor([[3, 17, 60, 0], [1, 2, 0, 0]])
    tokens = sids.token_ids(items)
    assert tokens.shape == (2, 12)
    assert (tokens.reshape(2, 4, 3)[items == 0] == 0).all()
    real = tokens[tokens != 0]
    assert real.min() >= 1 and real.max() < sids.vocab_size
    for level, (offset, size) in enumerate(zip(sids.offsets, sids.level_sizes, strict=True)):
        level_tokens = tokens.reshape(2, 4, 3)[..., level][items != 0]
        assert (level_tokens > offset).all() and (level_tokens <= offset + size).all()
    codes = sids.codes_of_tokens(tokens)
    back = [[sids.item_of(c) if c[0] >= 0 else 0 for c in row] for row in codes]
    assert back == items.tolist()
    assert sids.item_of((10**6, 0, 0)) == 0


def test_trie_allows_exactly_the_prefixes_of_real_items() -> None:
    sids, _ = semantic_ids(_mixture(items=50), levels=2, codebook_size=4)
    trie = sids.trie()
    prefix = torch.zeros(1, dtype=torch.long)
    allowed, child = trie.expand(0, prefix)
    assert set(allowed[0].nonzero().flatten().tolist()) == set(sids.codes[1:, 0].tolist())
    item = 7
    for level, code in enumerate(sids.codes[item]):
        allowed, child = trie.expand(level, prefix)
        assert allowed[0, code]
        prefix = child[:, code]
    assert prefix.item() == item


def test_codes_save_with_safetensors(tmp_path: Path) -> None:
    sids, _ = semantic_ids(_mixture(items=40), levels=2, codebook_size=4)
    save_file(sids.to_arrays(), tmp_path / "codes.safetensors")
    back = SemanticIds.from_arrays(load_file(tmp_path / "codes.safetensors"))
    np.testing.assert_array_equal(back.codes, sids.codes)
    assert back.level_sizes == sids.level_sizes


def test_bad_tables_are_refused() -> None:
    with pytest.raises(ValueError, match="share a code tuple"):
        SemanticIds(codes=np.array([[0, 0], [1, 0], [1, 0]]), level_sizes=(2, 1))
    with pytest.raises(ValueError, match="padding"):
        SemanticIds(codes=np.array([[1, 0], [1, 0]]), level_sizes=(2, 1))
    with pytest.raises(ValueError, match="within level_sizes"):
        SemanticIds(codes=np.array([[0, 0], [2, 0]]), level_sizes=(2, 1))
    with pytest.raises(ValueError, match="NaN"):
        residual_kmeans(np.full((3, 2), np.nan), levels=1, codebook_size=2)
