"""gBCE against a brute-force reference and the gSASRec paper's formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.train.gbce import gbce_beta, gbce_loss


def _sigmoid(s: float) -> float:
    return 1.0 / (1.0 + math.exp(-s))


def brute_force(pos: list[float], neg: list[list[float]], num_items: int, t: float) -> float:
    """-log(sigmoid(s+)^beta) - sum_j log(1 - sigmoid(s_j)), element by element."""
    k = len(neg[0])
    alpha = k / (num_items - 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    total = 0.0
    for s_pos, row in zip(pos, neg, strict=True):
        total -= math.log(_sigmoid(s_pos) ** beta)
        total -= sum(math.log(1.0 - _sigmoid(s)) for s in row)
    return total


@settings(max_examples=60, deadline=None)
@given(
    positions=st.integers(1, 6),
    k=st.integers(1, 8),
    extra_items=st.integers(0, 50),
    t=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_equals_brute_force(positions: int, k: int, extra_items: int, t: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(positions, generator=g, dtype=torch.float64) * 4
    neg = torch.randn(positions, k, generator=g, dtype=torch.float64) * 4
    num_items = k + 1 + extra_items
    got = gbce_loss(pos, neg, num_items, t)
    want = brute_force(pos.tolist(), neg.tolist(), num_items, t)
    assert got.item() == pytest.approx(want, rel=1e-10, abs=1e-10)


def test_beta_follows_the_paper() -> None:
    # gSASRec's ML-1M setting: 256 negatives of 3,416 items, t = 0.75.
    alpha = 256 / 3415
    assert gbce_beta(256, 3416, 0.75) == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))
    assert gbce_beta(256, 3416, 0.75) == pytest.approx(1 - 0.75 * (1 - alpha))
    assert gbce_beta(256, 3416, 0.0) == pytest.approx(1.0)  # plain BCE
    assert gbce_beta(256, 3416, 1.0) == pytest.approx(alpha)  # fully calibrated
    assert gbce_beta(3415, 3416, 0.75) == pytest.approx(1.0)  # every negative seen: alpha = 1


def test_t_zero_is_plain_bce() -> None:
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(5, generator=g), torch.randn(5, 3, generator=g)
    logits = torch.cat([pos[:, None], neg], 1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
    torch.testing.assert_close(gbce_loss(pos, neg, 100, 0.0), bce)


def test_equals_the_transformed_logit_form() -> None:
    """RecTools replaces s+ by log(1 / (sigmoid(s+)^-beta - 1)), whose sigmoid is
    sigmoid(s+)^beta, then applies plain BCE (and averages over the k + 1 terms)."""
    g = torch.Generator().manual_seed(1)
    pos = torch.randn(7, generator=g, dtype=torch.float64) * 3
    neg = torch.randn(7, 4, generator=g, dtype=torch.float64) * 3
    beta = gbce_beta(4, 40, 0.75)
    transformed = torch.log(1.0 / (torch.sigmoid(pos) ** -beta - 1.0))
    logits = torch.cat([transformed[:, None], neg], 1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1
    mean = F.binary_cross_entropy_with_logits(logits, labels, reduction="none").mean(1).sum()
    torch.testing.assert_close(gbce_loss(pos, neg, 40, 0.75) / 5, mean)


def test_finite_loss_and_gradients_at_extreme_logits() -> None:
    pos = torch.tensor([-80.0, 80.0, 0.0], requires_grad=True)
    neg = torch.tensor([[80.0, -80.0], [0.0, 80.0], [-80.0, 0.0]], requires_grad=True)
    loss = gbce_loss(pos, neg, 10, 0.75)
    loss.backward()
    assert (
        torch.isfinite(loss) and torch.isfinite(pos.grad).all() and torch.isfinite(neg.grad).all()
    )
    # d/ds+ of beta * softplus(-s+) is -beta * (1 - sigmoid(s+))
    beta = gbce_beta(2, 10, 0.75)
    torch.testing.assert_close(pos.grad, -beta * (1 - torch.sigmoid(pos.detach())))


def test_invalid_negatives_are_left_out() -> None:
    g = torch.Generator().manual_seed(2)
    pos, neg = torch.randn(4, generator=g), torch.randn(4, 3, generator=g)
    valid = torch.tensor([[True, False, True]] * 4)
    kept = gbce_loss(pos, neg, 50, 0.5, valid=valid)
    beta = gbce_beta(3, 50, 0.5)  # alpha counts all three drawn negatives
    want = beta * F.softplus(-pos).sum() + F.softplus(neg[:, [0, 2]]).sum()
    torch.testing.assert_close(kept, want)


@pytest.mark.parametrize(
    ("k", "num_items", "t", "needle"),
    [(0, 10, 0.5, "num_negatives"), (10, 10, 0.5, "num_negatives"), (3, 10, 1.5, "t must")],
)
def test_bad_arguments_are_refused(k: int, num_items: int, t: float, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        gbce_beta(k, num_items, t)


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match=r"\[P, k\]"):
        gbce_loss(torch.zeros(3), torch.zeros(2, 4), 10, 0.5)


def test_the_gbce_loss_entry_equals_the_paper_formula_on_its_own_draws():
    from recscale.train.losses import LossConfig, build_loss
    from tests.train.test_losses import TinyModel

    model = TinyModel(num_items=9, dim=4)
    items = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0]])
    targets = torch.tensor([[2, 3, 7, 0], [5, 2, 0, 0]])
    hidden = model.encode(items)
    loss = build_loss(LossConfig(name="gbce", num_negatives=4, gbce_t=0.75))
    total, count = loss(model, hidden, targets, torch.Generator().manual_seed(7))
    assert count == 5
    # The same draws, by hand: one row of 4 uniform negatives in 1..9 per target position.
    negatives = torch.randint(1, 10, (5, 4), generator=torch.Generator().manual_seed(7))
    mask = targets != 0
    q, pos = hidden[mask], targets[mask]
    alpha = 4 / (9 - 1)
    beta = alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha)
    want = 0.0
    for m in range(5):
        s_pos = float(q[m] @ model.emb[pos[m]]) / model.temperature
        want += -beta * math.log(1 / (1 + math.exp(-s_pos)))
        for j in range(4):
            if negatives[m, j] == pos[m]:
                continue
            s = float(q[m] @ model.emb[negatives[m, j]]) / model.temperature
            want += -math.log(1 - 1 / (1 + math.exp(-s)))
    assert float(total) == pytest.approx(want, rel=1e-5)
    total.backward()
    assert model.emb.grad is not None and torch.isfinite(model.emb.grad).all()
