"""The chunked cross-entropies against plain PyTorch on the full logit matrix."""

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
    matches,
    shared_sampled_cross_entropy,
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


def shared_sampled_reference(query, positive, negatives, tau, bias, pos_ids, neg_ids):
    """The plain formula: positive logit, shifted negatives, accidental hits masked."""
    pos_logit = (query * positive).sum(-1, keepdim=True) / tau
    neg_logits = query @ negatives.T / tau
    if bias is not None:
        neg_logits = neg_logits + bias
    neg_logits = neg_logits.masked_fill(pos_ids.unsqueeze(1) == neg_ids.unsqueeze(0), -torch.inf)
    logits = torch.cat([pos_logit, neg_logits], dim=1)
    return (torch.logsumexp(logits, dim=1) - pos_logit.squeeze(1)).sum()


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(1, 30),
    k=st.integers(1, 25),
    num_items=st.integers(1, 12),  # few items: many accidental hits and repeated negatives
    dim=st.integers(1, 6),
    rows=st.integers(1, 40),
    bias_kind=st.sampled_from(["none", "scalar", "vector"]),
    seed=st.integers(0, 2**16),
)
def test_shared_sampled_equals_the_plain_formula(m, k, num_items, dim, rows, bias_kind, seed):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(num_items + 1, dim, generator=g, dtype=torch.float64, requires_grad=True)
    query = torch.randn(m, dim, generator=g, dtype=torch.float64, requires_grad=True)
    pos_ids = torch.randint(1, num_items + 1, (m,), generator=g)
    neg_ids = torch.randint(1, num_items + 1, (k,), generator=g)
    bias = {
        "none": None,
        "scalar": 0.7,
        "vector": torch.randn(k, generator=g, dtype=torch.float64),
    }[bias_kind]
    args = (query, table[pos_ids], table[neg_ids], 0.3, bias, pos_ids, neg_ids)
    want = shared_sampled_reference(*args)
    got = shared_sampled_cross_entropy(*args, rows=rows)
    torch.testing.assert_close(got, want)
    for w, o in zip(
        torch.autograd.grad(want, [query, table], retain_graph=True),  # shares table[ids]
        torch.autograd.grad(got, [query, table]),
        strict=True,
    ):
        torch.testing.assert_close(o, w)


def test_shared_sampled_without_hit_check_and_without_grad():
    g = torch.Generator().manual_seed(0)
    query, positive, negatives = (torch.randn(n, 4, generator=g) for n in (6, 6, 9))
    want = shared_sampled_reference(
        query, positive, negatives, 0.5, None, torch.zeros(6), torch.ones(9)
    )
    torch.testing.assert_close(shared_sampled_cross_entropy(query, positive, negatives, 0.5), want)


@pytest.mark.parametrize("scoring", ["dot", "cosine"])
def test_full_softmax_fast_equals_reference_on_a_real_backbone(scoring):
    from recscale.models import ModelConfig, build_model
    from recscale.train.losses import LossConfig, build_loss

    torch.manual_seed(0)
    model = build_model(ModelConfig(dim=16, scoring=scoring, temperature=0.1), num_items=300)
    model.eval()  # no dropout: both passes see the same hidden states
    items = torch.randint(1, 301, (5, 9))
    items[2, 5:] = 0
    targets = torch.randint(1, 301, (5, 9))
    targets[2, 5:] = 0
    out = {}
    for impl in ("reference", "fast"):
        model.zero_grad()
        hidden = model.encode(items, None, (items != 0).sum(1))
        hidden.retain_grad()
        total, count = build_loss(LossConfig(name="full_softmax", impl=impl))(
            model, hidden, targets, None
        )
        total.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        out[impl] = (total.detach(), count, hidden.grad.clone(), grads)
    ref, fast = out["reference"], out["fast"]
    assert ref[1] == fast[1] == 41
    torch.testing.assert_close(fast[0], ref[0])
    torch.testing.assert_close(fast[2], ref[2])  # w.r.t. hidden states
    assert len(fast[3]) == len(ref[3])
    for f, r in zip(fast[3], ref[3], strict=True):  # item table and every other parameter
        # chunked and whole sums accumulate in another order: float32 rounding, ~1e-6 on
        # gradients of ~1e-2 (the exact place depends on the CPU's kernels)
        torch.testing.assert_close(f, r, rtol=1e-4, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    rows=st.lists(st.integers(0, 6), max_size=20),
    columns=st.lists(st.integers(0, 6), max_size=20),
)
def test_matches_are_the_equal_pairs(rows, columns):
    r, c = torch.tensor(rows, dtype=torch.long), torch.tensor(columns, dtype=torch.long)
    got = matches(r, c)
    want = (r.unsqueeze(1) == c.unsqueeze(0)).nonzero()
    pairs = zip(got[0].tolist(), got[1].tolist(), strict=True)
    assert sorted(pairs) == [tuple(p) for p in want.tolist()]
    assert got[0].tolist() == sorted(got[0].tolist())  # rows ascending, as the chunks need
