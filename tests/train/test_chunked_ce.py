"""The chunked full-softmax cross-entropy against F.cross_entropy on the full logits."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.train.chunked_ce import (
    MIN_ROWS,
    chunk_rows,
    chunked_cross_entropy,
    cross_entropy_reference,
)


def inputs(m: int, num_items: int, dim: int, seed: int, scale: float, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    query = (torch.randn(m, dim, generator=g, dtype=dtype) * scale).requires_grad_()
    items = (torch.randn(num_items, dim, generator=g, dtype=dtype) * scale).requires_grad_()
    targets = torch.randint(0, num_items, (m,), generator=g)
    return query, items, targets


def loss_and_grads(fn, query, items, targets, tau, **kw):
    loss = fn(query, items, targets, tau, **kw)
    return (loss, *torch.autograd.grad(loss, [query, items]))


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(1, 40),
    num_items=st.integers(1, 70),
    dim=st.integers(1, 9),
    rows=st.integers(1, 50),
    tau=st.floats(0.05, 2.0),
    scale=st.sampled_from([0.1, 1.0, 10.0]),
    seed=st.integers(0, 2**16),
)
def test_equals_the_reference_in_loss_and_gradients(m, num_items, dim, rows, tau, scale, seed):
    query, items, targets = inputs(m, num_items, dim, seed, scale)
    want = loss_and_grads(cross_entropy_reference, query, items, targets, tau)
    got = loss_and_grads(chunked_cross_entropy, query, items, targets, tau, rows=rows)
    for w, g in zip(want, got, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-9)


def test_float32_default_chunks_and_no_grad():
    query, items, targets = inputs(200, 1_000, 16, 0, 1.0, dtype=torch.float32)
    want = loss_and_grads(cross_entropy_reference, query, items, targets, 0.1)
    got = loss_and_grads(chunked_cross_entropy, query, items, targets, 0.1, rows=64)
    for w, g in zip(want, got, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-3)
    with torch.no_grad():
        plain = chunked_cross_entropy(query, items, targets, 0.1, rows=7)
    assert not plain.requires_grad
    torch.testing.assert_close(plain, want[0], rtol=2e-5, atol=1e-3)


def test_upstream_gradient_scales_the_saved_ones():
    query, items, targets = inputs(9, 11, 3, 1, 1.0)
    (q1, i1) = torch.autograd.grad(
        chunked_cross_entropy(query, items, targets, 0.5), [query, items]
    )
    scaled = 2.5 * chunked_cross_entropy(query, items, targets, 0.5)
    (q2, i2) = torch.autograd.grad(scaled, [query, items])
    torch.testing.assert_close(q2, 2.5 * q1)
    torch.testing.assert_close(i2, 2.5 * i1)


def test_only_one_input_needs_grad():
    query, items, targets = inputs(5, 8, 3, 2, 1.0)
    frozen = items.detach()
    (gq,) = torch.autograd.grad(chunked_cross_entropy(query, frozen, targets, 0.3), [query])
    (want,) = torch.autograd.grad(cross_entropy_reference(query, frozen, targets, 0.3), [query])
    torch.testing.assert_close(gq, want)


def test_chunk_rows_keeps_the_buffer_bounded():
    assert chunk_rows(3_416) * 3_416 * 4 <= 8 * 2**20
    assert chunk_rows(1_000_000) == MIN_ROWS  # flat in catalogue size beyond ~32K items
    assert chunk_rows(1) > 0


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_bf16_autocast_keeps_fp32_math():
    query, items, targets = inputs(20, 30, 8, 3, 1.0, dtype=torch.float32)
    want = cross_entropy_reference(query, items, targets, 0.05)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = chunked_cross_entropy(query, items, targets, 0.05, rows=6)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)
