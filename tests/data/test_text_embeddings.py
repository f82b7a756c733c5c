"""Sentence embeddings of item texts: the packaged model, offline, cached once per texts."""

from __future__ import annotations

import numpy as np
import pytest

from recscale.data import text_embeddings
from recscale.data.text_embeddings import DEFAULT_TEXT_MODEL, cache_path, embed_texts
from recscale.errors import RecscaleError

TEXTS = [
    "",
    "Toy Story (1995). Genres: Animation, Children's, Comedy",
    "Toy Story 2 (1999). Genres: Animation, Children's, Comedy",
    "Schindler's List (1993). Genres: Drama, War",
]


def test_packaged_model_embeds_offline_and_the_cache_serves_reruns(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    vectors = embed_texts(TEXTS, progress=False)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.all(vectors[0] == 0)
    np.testing.assert_allclose(np.linalg.norm(vectors[1:], axis=1), 1.0, atol=1e-5)
    sims = vectors[1:] @ vectors[1]
    assert sims[1] > sims[2] + 0.1, "the two Toy Story films are nearer than an unrelated one"
    assert cache_path(TEXTS, DEFAULT_TEXT_MODEL).is_file()

    def no_model(name):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(text_embeddings, "_encoder", no_model)
    np.testing.assert_array_equal(embed_texts(TEXTS, progress=False), vectors)


def test_cache_key_depends_on_model_and_every_text():
    base = cache_path(TEXTS, DEFAULT_TEXT_MODEL)
    assert cache_path(TEXTS, "other/model") != base
    assert cache_path([*TEXTS[:-1], "Heat (1995)"], DEFAULT_TEXT_MODEL) != base
    assert cache_path(list(TEXTS), DEFAULT_TEXT_MODEL) == base


def test_unloadable_model_names_the_packaged_ones(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RecscaleError, match=r"cannot load.*all-MiniLM-L6-v2"):
        embed_texts(["a film"], model=str(tmp_path / "no-such-model"), progress=False)


def test_nothing_to_embed_is_an_error():
    with pytest.raises(RecscaleError, match="no item has text"):
        embed_texts(["", ""], progress=False)
