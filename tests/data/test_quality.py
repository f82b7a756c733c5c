"""Quality measures: the vectorised ApEn equals the plain reference on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.data.quality import (
    apen,
    apen_batch,
    apen_per_user,
    compression_ratio,
    data_quality,
    lz_entropy_rate,
    shannon_entropy,
)

from .conftest import make_dataset

seqs_strategy = st.lists(
    st.lists(st.integers(1, 6), min_size=0, max_size=20), min_size=1, max_size=12
)


@settings(max_examples=80, deadline=None)
@given(
    seqs=seqs_strategy,
    m=st.integers(1, 4),
    r=st.sampled_from([-1.0, 0.0, 0.1, 0.2, 1.0, 2.0]),
    last_k=st.sampled_from([None, 3, 8, 50]),
)
def test_apen_batch_equals_reference(seqs, m, r, last_k):
    ds = make_dataset([s or [1] for s in seqs])
    per_user = apen_per_user(ds, m, r, last_k)
    ref = [
        apen(ds.sequence(u)[-last_k:] if last_k else ds.sequence(u), m, r)
        for u in range(ds.num_users)
    ]
    np.testing.assert_allclose(per_user, ref, rtol=1e-9, atol=1e-12)
    assert apen_batch(ds, m, r, last_k) == pytest.approx(np.mean(ref), rel=1e-9, abs=1e-12)


def test_apen_known_values():
    assert apen([1, 1, 1, 1, 1, 1], 2, 0.2) == pytest.approx(0.0, abs=1e-12)
    # Alternating 1,2: every 2-template and 3-template has exactly half its kind matching.
    assert apen([1, 2] * 10, 2, 0.2) < 0.1
    assert apen([1, 2, 3], 5, 0.2) == 0.0  # no template of length m+1


def test_shannon_lz_compression():
    assert shannon_entropy(np.array([1, 2, 3, 4])) == pytest.approx(2.0)
    assert shannon_entropy(np.array([7, 7, 7])) == 0.0
    assert compression_ratio([1] * 1000) < 0.05
    rng = np.random.default_rng(0)
    assert compression_ratio(rng.integers(0, 2**31, 1000)) > 0.9
    # Hand-worked [1,1,1]: λ0 = 1 ((1) new), λ1 = 2 ((1,1) new), λ2: (1) seen at the end,
    # so 3 - 2 + 1 = 2; total 5.
    assert lz_entropy_rate([1, 1, 1]) == pytest.approx(3 * math.log(3) / 5)
    assert lz_entropy_rate(rng.integers(0, 1000, 200)) > lz_entropy_rate([1, 2] * 100)


def test_data_quality_keys(toy):
    q = data_quality(toy, last_k=50)
    assert set(q) >= {"apen", "shannon_entropy_bits", "lz_entropy_rate", "compression_ratio"}
    assert all(isinstance(v, (int, float)) or v is None for v in q.values())
