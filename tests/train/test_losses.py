"""Training losses against hand-computed values and the full softmax they approximate."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import recscale.train.losses as losses_mod
from recscale.config import validate
from recscale.errors import RecscaleError
from recscale.train.losses import LOSSES, LossConfig, SampledSoftmax, build_loss

# Hand computations read scalars off tensors that require grad.
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


class TinyModel(nn.Module):
    """Test-only recommender: hidden = projected embedding of the current item."""

    def __init__(self, num_items: int = 9, dim: int = 4, seed: int = 0, temperature: float = 0.5):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.emb = nn.Parameter(torch.randn(num_items + 1, dim, generator=g))
        self.proj = nn.Linear(dim, dim)
        self.num_items = num_items
        self.temperature = temperature

    def encode(self, items, timestamps=None, lengths=None):
        return self.proj(self.emb[items])

    def query_vectors(self, hidden):
        return hidden

    def item_vectors(self, ids=None):
        return self.emb if ids is None else self.emb[ids]


def batch(model: TinyModel):
    items = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]])
    targets = torch.tensor([[2, 3, 7, 0], [5, 2, 0, 0], [7, 8, 9, 2]])
    return model.encode(items), targets


def full_softmax_reference(model, hidden, targets, tau=None):
    mask = targets != 0
    logits = hidden[mask] @ model.emb[1:].T / (tau or model.temperature)
    return F.cross_entropy(logits, targets[mask] - 1, reduction="sum")


def make(name: str, **kw):
    return build_loss(LossConfig(name=name, **kw))


def test_registry_and_config():
    assert LOSSES.names() == ["bce", "full_softmax", "gbce", "in_batch", "sampled_softmax"]
    assert LossConfig().name == "sampled_softmax" and LossConfig().num_negatives == 128
    with pytest.raises(RecscaleError, match="name"):
        validate(LossConfig, {"name": "softmax"})
    with pytest.raises(RecscaleError, match="unknown key 'negatives'"):
        validate(LossConfig, {"negatives": 3})
    with pytest.raises(RecscaleError, match="known: bce, full_softmax"):
        LOSSES.get("nope")


def test_full_softmax_by_hand_and_count():
    model = TinyModel()
    hidden, targets = batch(model)
    total, count = make("full_softmax")(model, hidden, targets, None)
    assert count == 9
    assert torch.allclose(total, full_softmax_reference(model, hidden, targets))
    # One position by hand.
    q = hidden[1, 1]
    logits = [float(q @ model.emb[i]) / 0.5 for i in range(1, 10)]
    one, n = make("full_softmax")(model, hidden[1:2, 1:2], targets[1:2, 1:2], None)
    assert n == 1
    assert float(one) == pytest.approx(
        math.log(sum(math.exp(x) for x in logits)) - logits[1], rel=1e-5
    )


def test_padded_positions_are_never_read():
    model = TinyModel()
    hidden, targets = batch(model)
    poisoned = hidden.detach().clone()
    poisoned[targets == 0] = float("nan")
    for name in LOSSES.names():
        total, count = make(name)(model, poisoned, targets, torch.Generator().manual_seed(0))
        assert count == 9 and torch.isfinite(total), name


def test_no_target_positions():
    model = TinyModel()
    for name in LOSSES.names():
        hidden = model.encode(torch.tensor([[1, 2]]))
        total, count = make(name)(model, hidden, torch.zeros(1, 2, dtype=torch.long), None)
        assert count == 0 and float(total) == 0.0
        total.backward()  # still a graph the trainer can call backward on


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("logq", [False, True])
def test_sampled_softmax_with_every_item_is_full_softmax(monkeypatch, shared, logq):
    model = TinyModel()
    hidden, targets = batch(model)
    loss = make("sampled_softmax", num_negatives=9, shared_negatives=shared, logq_correction=logq)

    def every_item(num_items, size, generator, device):
        return torch.arange(1, num_items + 1).expand(size).clone()

    monkeypatch.setattr(loss, "sample", every_item)
    total, count = loss(model, hidden, targets, None)
    # The positive's own copy among the negatives is an accidental hit, masked out; with
    # K = num_items uniform draws the logQ shift log(K / num_items) is zero.
    assert count == 9
    assert torch.allclose(total, full_softmax_reference(model, hidden, targets), atol=1e-5)


def test_sampled_softmax_by_hand_with_hits_and_logq(monkeypatch):
    model = TinyModel(num_items=9)
    hidden, targets = batch(model)
    hidden, targets = hidden[:1, :1], targets[:1, :1]  # one position, positive = 2
    negatives = torch.tensor([2, 5, 5])
    for logq in (False, True):
        loss = make("sampled_softmax", num_negatives=3, logq_correction=logq)
        monkeypatch.setattr(loss, "sample", lambda n, size, g, d: negatives)
        total, _ = loss(model, hidden, targets, None)
        q = hidden[0, 0]
        s = {i: float(q @ model.emb[i]) / 0.5 for i in (2, 5)}
        shift = math.log(3 / 9) if logq else 0.0
        # Negative 2 is the positive: masked. Negative 5 was drawn twice: counted twice.
        want = -s[2] + math.log(math.exp(s[2]) + 2 * math.exp(s[5] - shift))
        assert float(total) == pytest.approx(want, rel=1e-5)


def test_sampled_softmax_with_popularity_probs(monkeypatch):
    model = TinyModel(num_items=4)
    hidden = model.encode(torch.tensor([[1]]))
    targets = torch.tensor([[3]])
    probs = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4])
    loss = SampledSoftmax(LossConfig(num_negatives=2, logq_correction=True), probs=probs)
    total, _ = loss(model, hidden, targets, torch.Generator().manual_seed(0))
    assert torch.isfinite(total)
    monkeypatch.setattr(loss, "sample", lambda n, size, g, d: torch.tensor([1, 4]))
    total, _ = loss(model, hidden, targets, None)
    q = hidden[0, 0]
    s = {i: float(q @ model.emb[i]) / 0.5 for i in (1, 3, 4)}
    want = -s[3] + math.log(
        math.exp(s[3]) + math.exp(s[1] - math.log(2 * 0.1)) + math.exp(s[4] - math.log(2 * 0.4))
    )
    assert float(total) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="padding"):
        SampledSoftmax(LossConfig(), probs=torch.ones(5) / 5)


def test_sampled_negatives_follow_the_generator():
    model = TinyModel()
    hidden, targets = batch(model)
    loss = make("sampled_softmax", num_negatives=4)
    a = loss(model, hidden, targets, torch.Generator().manual_seed(3))[0]
    b = loss(model, hidden, targets, torch.Generator().manual_seed(3))[0]
    c = loss(model, hidden, targets, torch.Generator().manual_seed(4))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_in_batch_by_hand():
    model = TinyModel()
    hidden = model.encode(torch.tensor([[1, 2, 3]]))
    targets = torch.tensor([[4, 6, 4]])  # item 4 twice: one class, not its own negative
    for logq in (False, True):
        total, count = make("in_batch", logq_correction=logq)(model, hidden, targets, None)
        assert count == 3
        want = 0.0
        for p, t in enumerate([4, 6, 4]):
            q = hidden[0, p]
            s = {i: float(q @ model.emb[i]) / 0.5 for i in (4, 6)}
            if logq:  # in-batch frequencies 2/3 and 1/3
                s = {4: s[4] - math.log(2 / 3), 6: s[6] - math.log(1 / 3)}
            want += -s[t] + math.log(math.exp(s[4]) + math.exp(s[6]))
        assert float(total) == pytest.approx(want, rel=1e-5)


def test_bce_by_hand(monkeypatch):
    model = TinyModel()
    hidden = model.encode(torch.tensor([[1, 2, 3]]))
    targets = torch.tensor([[2, 3, 0]])
    draws = iter([torch.tensor([[3, 7, 9]]), torch.tensor([[8, 1, 1]])])
    monkeypatch.setattr(losses_mod, "_randint", lambda high, size, g, d: next(draws))
    total, count = make("bce")(model, hidden, targets, None)
    assert count == 2
    # Position 0 drew 3, an item of its own row: redrawn as 8. Position 1 keeps 7.
    want = 0.0
    for p, (pos, neg) in enumerate([(2, 8), (3, 7)]):
        q = hidden[0, p]
        sp, sn = float(q @ model.emb[pos]) / 0.5, float(q @ model.emb[neg]) / 0.5
        want += -math.log(1 / (1 + math.exp(-sp))) - math.log(1 - 1 / (1 + math.exp(-sn)))
    assert float(total) == pytest.approx(want, rel=1e-5)


def test_bce_drops_a_negative_that_keeps_colliding(monkeypatch):
    model = TinyModel(num_items=2)
    hidden = model.encode(torch.tensor([[1, 2]]))
    targets = torch.tensor([[2, 1]])  # every item is in the row: no valid negative exists
    total, count = make("bce")(model, hidden, targets, torch.Generator().manual_seed(0))
    pos = (hidden[0] * model.emb[torch.tensor([2, 1])]).sum(-1) / 0.5
    assert count == 2
    assert torch.allclose(total, F.softplus(-pos).sum())


def test_temperature_override():
    model = TinyModel()
    hidden, targets = batch(model)
    total, _ = make("full_softmax", temperature=0.05)(model, hidden, targets, None)
    assert torch.allclose(total, full_softmax_reference(model, hidden, targets, tau=0.05))


@pytest.mark.parametrize("name", ["full_softmax", "sampled_softmax", "in_batch", "bce"])
def test_gradients_flow_through_a_real_backbone(name):
    from recscale.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig(), num_items=30)
    items = torch.randint(1, 31, (3, 6))
    items[1, 4:] = 0
    targets = torch.randint(1, 31, (3, 6))
    targets[1, 4:] = 0
    hidden = model.encode(items, None, (items != 0).sum(1))
    total, count = make(name, num_negatives=8)(model, hidden, targets, torch.Generator())
    assert count == 16 and torch.isfinite(total)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(g is None or torch.isfinite(g).all() for g in grads)


def test_bf16_autocast_keeps_loss_in_fp32():
    model = TinyModel()
    hidden, targets = batch(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total, _ = make("sampled_softmax", num_negatives=5)(
            model, hidden.bfloat16(), targets, torch.Generator().manual_seed(0)
        )
    assert total.dtype == torch.float32


def test_per_position_logits_dense_path_equals_gather_path():
    model = TinyModel(num_items=50, dim=6)
    query = torch.randn(7, 6, requires_grad=True)
    negatives = torch.randint(1, 51, (7, 5))
    dense = losses_mod.per_position_logits(model, query, negatives, dense=True)
    gather = losses_mod.per_position_logits(model, query, negatives, dense=False)
    torch.testing.assert_close(dense, gather)
    (g_dense,) = torch.autograd.grad(dense.square().sum(), model.emb)
    (g_gather,) = torch.autograd.grad(gather.square().sum(), model.emb)
    torch.testing.assert_close(g_dense, g_gather)


def test_behaviour_loss_is_the_cross_entropy_of_the_next_level():
    from recscale.models import build_model
    from recscale.models.config import ModelConfig
    from recscale.train.losses import behaviour_loss

    cfg = ModelConfig(
        backbone="gpt",
        dim=8,
        layers=1,
        heads=1,
        max_len=4,
        behaviour_levels=[1.0, 2.0, 3.0],
        predict_behaviour=True,
    )
    model = build_model(cfg, 10)
    torch.nn.init.zeros_(model.behaviour_head.weight)
    with torch.no_grad():
        model.behaviour_head.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    hidden = torch.randn(1, 4, 8)
    targets = torch.tensor([[2, 3, 4, 0]])
    ratings = torch.tensor([[3.0, 1.0, 2.5, 0.0]])  # 2.5 is not a level: not counted
    got = behaviour_loss(model, hidden, targets, ratings)
    log_z = torch.logsumexp(torch.tensor([0.0, 0.0, 1.0]), 0)
    torch.testing.assert_close(got, (log_z - 1.0) + log_z)
    with pytest.raises(ValueError, match="no ratings"):
        behaviour_loss(model, hidden, targets, None)


@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_full_softmax_over_a_training_catalogue_leaves_unknown_items_untouched(impl):
    """Items outside the catalogue are no class: the loss is the softmax over the known items
    alone and their vectors get no gradient."""
    model = TinyModel()
    hidden, targets = batch(model)
    hidden = hidden.detach()  # the inputs hold items 1, 4, 6: only the output side counts
    known = torch.ones(10, dtype=torch.bool)
    known[[0, 1, 4, 6]] = False  # 1, 4, 6 never occur as targets above
    loss = build_loss(LossConfig(name="full_softmax", impl=impl), catalogue=known)
    total, count = loss(model, hidden, targets, None)
    mask = targets != 0
    ids = torch.tensor([2, 3, 5, 7, 8, 9])
    logits = hidden[mask] @ model.emb[ids].T / model.temperature
    index = torch.searchsorted(ids, targets[mask])
    assert count == 9
    torch.testing.assert_close(total, F.cross_entropy(logits, index, reduction="sum"))
    total.backward()
    assert model.emb.grad[[1, 4, 6]].abs().sum() == 0
    assert model.emb.grad[ids].abs().sum() > 0


def test_training_catalogue_only_on_the_cold_items_split():
    from types import SimpleNamespace

    from recscale.train.losses import training_catalogue
    from tests.data.conftest import make_dataset

    train = make_dataset([[1, 2, 3], [5, 2], [6, 6]])  # items 1..6; 4 never seen
    split = SimpleNamespace(train=train)

    def cfg(split_name, loss):
        return SimpleNamespace(data=SimpleNamespace(split=split_name), loss=LossConfig(name=loss))

    assert training_catalogue(cfg("leave_one_out", "full_softmax"), split) == {}
    known = training_catalogue(cfg("cold_items", "full_softmax"), split)["catalogue"]
    assert known.tolist() == [False, True, True, True, False, True, True]
    probs = training_catalogue(cfg("cold_items", "sampled_softmax"), split)["probs"]
    assert probs[4] == 0 and probs[0] == 0 and float(probs.sum()) == pytest.approx(1.0)
    with pytest.raises(RecscaleError, match="allowed: full_softmax, sampled_softmax"):
        training_catalogue(cfg("cold_items", "bce"), split)
