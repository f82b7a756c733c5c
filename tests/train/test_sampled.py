"""Sampled-softmax fast paths against plain PyTorch references and brute-force formulas."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.config import validate
from recscale.errors import RecscaleError
from recscale.train.losses import LossConfig, SampledSoftmax, build_loss
from recscale.train.sampled import gathered_dot, per_sequence_logits, rows_of
from tests.train.test_losses import TinyModel

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(1, 30),
    k=st.integers(1, 12),
    num_items=st.integers(1, 40),
    dim=st.integers(1, 7),
    rows=st.integers(1, 20),
    seed=st.integers(0, 2**16),
)
def test_gathered_dot_equals_einsum_of_the_gathered_rows(m, k, num_items, dim, rows, seed):
    g = torch.Generator().manual_seed(seed)
    query = torch.randn(m, dim, generator=g, dtype=torch.float64, requires_grad=True)
    table = torch.randn(num_items, dim, generator=g, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, num_items, (m, k), generator=g)  # repeats: gradients must add up
    upstream = torch.randn(m, k, generator=g, dtype=torch.float64)
    want = torch.einsum("md,mkd->mk", query, table[ids])
    got = gathered_dot(query, table, ids, rows=rows)
    torch.testing.assert_close(got, want)
    want_grads = torch.autograd.grad(want, [query, table], upstream)
    got_grads = torch.autograd.grad(got, [query, table], upstream)
    for w, o in zip(want_grads, got_grads, strict=True):
        torch.testing.assert_close(o, w)


def test_gathered_dot_with_a_frozen_input():
    query = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    table = torch.randn(6, 3, dtype=torch.float64)
    ids = torch.randint(0, 6, (4, 5))
    (got,) = torch.autograd.grad(gathered_dot(query, table, ids, 3).sum(), [query])
    (want,) = torch.autograd.grad(torch.einsum("md,mkd->mk", query, table[ids]).sum(), [query])
    torch.testing.assert_close(got, want)


@settings(max_examples=30, deadline=None)
@given(
    b=st.integers(1, 9),
    n=st.integers(1, 8),
    k=st.integers(1, 6),
    groups=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_per_sequence_logits_by_brute_force(b, n, k, groups, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, n, generator=g) < 0.6  # any pattern, empty rows included
    query = torch.randn(int(mask.sum()), 4, generator=g, dtype=torch.float64, requires_grad=True)
    negatives = torch.randn(b, k, 4, generator=g, dtype=torch.float64, requires_grad=True)
    got = per_sequence_logits(query, negatives, mask, groups=groups)
    rows = rows_of(mask)
    want = torch.einsum("md,mkd->mk", query, negatives[rows])
    torch.testing.assert_close(got, want)
    if len(rows):
        upstream = torch.randn(want.shape, generator=g, dtype=torch.float64)
        for w, o in zip(
            torch.autograd.grad(want, [query, negatives], upstream),
            torch.autograd.grad(got, [query, negatives], upstream),
            strict=True,
        ):
            torch.testing.assert_close(o, w)


def test_rows_of():
    mask = torch.tensor([[True, True, False], [False, False, False], [True, False, True]])
    assert rows_of(mask).tolist() == [0, 0, 2, 2]


def loss_and_grads(model, name_kw, hidden_in, targets, seed):
    """Loss and its gradients w.r.t. hidden states and the item table, fixed negatives seed."""
    hidden = hidden_in.detach().clone().requires_grad_()
    loss = build_loss(LossConfig(**name_kw))
    total, count = loss(model, hidden, targets, torch.Generator().manual_seed(seed))
    grads = torch.autograd.grad(total, [hidden, model.emb])
    return total, count, *grads


def random_batch(num_items: int, seed: int, b: int = 4, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(1, num_items + 1, (b, n), generator=g)
    targets[1, 3:] = 0
    targets[2, :] = 0
    hidden = torch.randn(b, n, 5, generator=g)
    return hidden, targets


# K = 7: dense scoring (I <= 16 K); gathered from the whole prepared table (M K >= I); gathered
# from the distinct draws only (M K < I).
@pytest.mark.parametrize(("num_items", "rows"), [(30, 4), (150, 8), (900, 4)])
@pytest.mark.parametrize("logq", [False, True])
@pytest.mark.parametrize("cosine", [False, True])
def test_fast_per_position_equals_the_reference(num_items, rows, logq, cosine):
    model = TinyModel(num_items=num_items, dim=5)
    if cosine:  # item_vectors normalises: the fast path normalises each item once instead
        model.item_vectors = lambda ids=None: torch.nn.functional.normalize(
            model.emb if ids is None else model.emb[ids], dim=-1
        )
    hidden, targets = random_batch(num_items, seed=num_items, b=rows)
    cfg = {"name": "sampled_softmax", "num_negatives": 7, "sharing": "position"}
    ref = loss_and_grads(
        model, {**cfg, "impl": "reference", "logq_correction": logq}, hidden, targets, 5
    )
    fast = loss_and_grads(
        model, {**cfg, "impl": "fast", "logq_correction": logq}, hidden, targets, 5
    )
    assert ref[1] == fast[1] == int((targets != 0).sum())
    for r, f in zip(ref, fast, strict=True):
        if isinstance(r, torch.Tensor):
            torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("logq", [False, True])
def test_negatives_shared_per_sequence_by_brute_force(monkeypatch, logq):
    model = TinyModel(num_items=9)
    hidden = model.encode(torch.tensor([[1, 2, 3], [4, 5, 0]]))
    targets = torch.tensor([[2, 3, 7], [5, 0, 0]])
    drawn = torch.tensor([[3, 4, 4, 9], [5, 1, 2, 8]])  # row 0: 3 hits position 1; row 1: 5 hits
    loss = build_loss(LossConfig(num_negatives=4, sharing="sequence", logq_correction=logq))
    sizes = []

    def fixed(num_items, size, generator, device):
        sizes.append(size)
        return drawn

    monkeypatch.setattr(loss, "sample", fixed)
    total, count = loss(model, hidden, targets, None)
    assert sizes == [(2, 4)] and count == 4
    shift = math.log(4 / 9) if logq else 0.0
    want = 0.0
    for b, n in [(0, 0), (0, 1), (0, 2), (1, 0)]:
        pos = int(targets[b, n])
        s = {int(i): float(hidden[b, n] @ model.emb[i]) / 0.5 for i in [pos, *drawn[b]]}
        z = math.exp(s[pos]) + sum(math.exp(s[int(j)] - shift) for j in drawn[b] if int(j) != pos)
        want += -s[pos] + math.log(z)
    assert float(total) == pytest.approx(want, rel=1e-5)


def test_per_sequence_gradients_flow_to_hidden_and_items():
    model = TinyModel(num_items=40, dim=5)
    hidden, targets = random_batch(40, seed=3)
    total, count, g_hidden, g_items = loss_and_grads(
        model,
        {"name": "sampled_softmax", "num_negatives": 6, "sharing": "sequence"},
        hidden,
        targets,
        1,
    )
    assert count == 15 and torch.isfinite(total)
    assert g_hidden[targets == 0].abs().sum() == 0 and g_hidden.abs().sum() > 0
    assert g_items.abs().sum() > 0


def test_sharing_config():
    assert LossConfig().negatives_shared_by == "batch"
    assert LossConfig(shared_negatives=False).negatives_shared_by == "position"
    assert LossConfig(sharing="sequence").negatives_shared_by == "sequence"
    assert LossConfig(sharing="position", shared_negatives=False).negatives_shared_by == "position"
    with pytest.raises(RecscaleError, match="contradicts shared_negatives"):
        validate(LossConfig, {"sharing": "batch", "shared_negatives": False})
    with pytest.raises(RecscaleError, match="impl"):
        validate(LossConfig, {"impl": "fused"})
    # A resolved config written into a run directory reads back the same.
    cfg = LossConfig(sharing="sequence")
    assert validate(LossConfig, cfg.model_dump()) == cfg


@pytest.mark.parametrize("logq", [False, True])
@pytest.mark.parametrize("probs", [False, True])
def test_fast_shared_batch_equals_the_reference(logq, probs):
    model = TinyModel(num_items=12, dim=5)
    hidden, targets = random_batch(12, seed=7)  # 12 items, 20 negatives: many accidental hits
    weights = torch.cat([torch.zeros(1), torch.linspace(1.0, 3.0, 12)]) if probs else None
    out = {}
    for impl in ("reference", "fast"):
        cfg = LossConfig(num_negatives=20, sharing="batch", logq_correction=logq, impl=impl)
        loss = SampledSoftmax(cfg, probs=None if weights is None else weights / weights.sum())
        h = hidden.clone().requires_grad_()
        total, count = loss(model, h, targets, torch.Generator().manual_seed(2))
        out[impl] = (total, count, *torch.autograd.grad(total, [h, model.emb]))
    assert out["fast"][1] == out["reference"][1] == 15
    for r, f in zip(out["reference"], out["fast"], strict=True):
        if isinstance(r, torch.Tensor):
            torch.testing.assert_close(f, r, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("logq", [False, True])
def test_mixed_in_batch_and_uniform_negatives_by_brute_force(monkeypatch, impl, logq):
    from collections import Counter

    model = TinyModel(num_items=9)
    hidden = model.encode(torch.tensor([[1, 2, 3], [4, 5, 0]]))
    targets = torch.tensor([[2, 3, 2], [5, 0, 0]])  # batch targets: 2 twice, 3, 5
    drawn = torch.tensor([3, 8, 8])  # 3 is also a batch target; 8 drawn twice
    cfg = LossConfig(num_negatives=3, in_batch_negatives=True, logq_correction=logq, impl=impl)
    loss = build_loss(cfg)
    monkeypatch.setattr(loss, "sample", lambda n, size, g, d: drawn)
    total, count = loss(model, hidden, targets, None)
    assert count == 4
    counts = Counter([2, 3, 2, 5])
    # Columns: the distinct batch targets, then the draws; E_j = c_j + K / I.
    columns = [(j, math.log((c + 3 / 9) / c)) for j, c in sorted(counts.items())]
    columns += [(int(j), math.log(counts.get(int(j), 0) + 3 / 9)) for j in drawn]
    want = 0.0
    for b, n in [(0, 0), (0, 1), (0, 2), (1, 0)]:
        pos = int(targets[b, n])
        s = {i: float(hidden[b, n] @ model.emb[i]) / 0.5 for i in range(1, 10)}
        z = math.exp(s[pos]) + sum(
            math.exp(s[j] - (shift if logq else 0.0)) for j, shift in columns if j != pos
        )
        want += -s[pos] + math.log(z)
    assert float(total) == pytest.approx(want, rel=1e-5)


def test_in_batch_negatives_need_batch_sharing():
    with pytest.raises(RecscaleError, match="in_batch_negatives needs sharing=batch"):
        validate(LossConfig, {"in_batch_negatives": True, "sharing": "sequence"})


@pytest.mark.parametrize(
    "kw",
    [
        {"name": "full_softmax"},
        {"sharing": "position"},
        {"sharing": "sequence"},
        {"sharing": "batch"},
        {"sharing": "batch", "in_batch_negatives": True, "logq_correction": True},
    ],
)
def test_fast_paths_score_in_fp32_under_bf16_autocast(kw):
    model = TinyModel(num_items=500, dim=8)
    _, targets = random_batch(500, seed=4)
    hidden = torch.randn(*targets.shape, 8)
    loss = build_loss(LossConfig(num_negatives=16, **kw))
    plain = loss(model, hidden, targets, torch.Generator().manual_seed(1))[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = loss(model, hidden, targets, torch.Generator().manual_seed(1))[0]
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, plain)
