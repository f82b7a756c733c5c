"""The encoder contract, for every backbone and every HSTU switch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recscale.models import SequenceRecommender, build_model
from recscale.models.attention import Attend
from tests.models.model_cases import NUM_ITEMS, VARIANTS, config, random_batch

NAMES = sorted(VARIANTS)


def _model(name: str, seed: int = 0, **overrides) -> SequenceRecommender:
    torch.manual_seed(seed)
    return build_model(config(name, **overrides), NUM_ITEMS).eval()


@pytest.mark.parametrize("name", NAMES)
def test_causal(name: str) -> None:
    model = _model(name)
    items, ts, lengths = random_batch(2, 8, [8, 8])
    with torch.no_grad():
        base = model.encode(items, ts, lengths)
        for t in range(8):
            changed = items.clone()
            changed[:, t] = changed[:, t] % NUM_ITEMS + 1
            out = model.encode(changed, ts, lengths)
            torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-6)
            assert not torch.allclose(out[:, t], base[:, t]), "the changed position must change"


@pytest.mark.parametrize("name", NAMES)
def test_padding_invariant(name: str) -> None:
    model = _model(name)
    items, ts, lengths = random_batch(3, 6, [6, 3, 1])
    with torch.no_grad():
        short = model.encode(items, ts, lengths)
        long = model.encode(F.pad(items, (0, 5)), F.pad(ts, (0, 5)), lengths)
    valid = items != 0
    torch.testing.assert_close(long[:, :6][valid], short[valid], rtol=1e-5, atol=1e-5)
    assert long[:, 6:].abs().max() == 0 and short[~valid].abs().max() == 0


@pytest.mark.parametrize("name", NAMES)
def test_batch_invariant(name: str) -> None:
    model = _model(name)
    items, ts, lengths = random_batch(3, 7, [7, 4, 2], seed=1)
    with torch.no_grad():
        together = model.encode(items, ts, lengths)
        for b in range(3):
            alone = model.encode(items[b : b + 1], ts[b : b + 1], lengths[b : b + 1])
            torch.testing.assert_close(alone[0], together[b], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["sasrec", "esasrec", "gpt", "llama", "hstu", "hstu-llama"])
def test_deterministic_with_seed(name: str) -> None:
    items, ts, lengths = random_batch(2, 8, [8, 5])
    outs = []
    for _ in range(2):
        model = _model(name, seed=7, dropout=0.3, emb_dropout=0.3).train()
        torch.manual_seed(11)
        outs.append(model.encode(items, ts, lengths))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    other = _model(name, seed=8).train()
    torch.manual_seed(11)
    assert not torch.allclose(other.encode(items, ts, lengths), outs[0])


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_every_parameter(name: str) -> None:
    model = _model(name).train()
    items, ts, lengths = random_batch(3, 8, [8, 6, 3], seed=2)
    hidden = model.encode(items, ts, lengths)
    logits = model.logits(hidden)
    targets = torch.roll(items, -1, dims=1)
    F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=0).backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, pname
        assert param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", NAMES)
def test_encode_last_equals_the_full_output_at_each_rows_last_position(name: str) -> None:
    # Every backbone with supports_last_only computes only that query in its final layer.
    model = _model(name)
    for layer in getattr(model.encoder, "layers", []):  # bias tables that matter at this size
        if getattr(layer, "rab", None) is not None:
            torch.nn.init.normal_(layer.rab.pos_w, std=1.0)
            if layer.rab.time_w is not None:
                torch.nn.init.normal_(layer.rab.time_w, std=1.0)
    items, ts, lengths = random_batch(4, 9, [9, 5, 1, 0], seed=2)
    rows, last = torch.arange(4), (lengths - 1).clamp(min=0)
    full = model.encode(items, ts, lengths)[rows, last]
    fast = model.encode_last(items, ts, lengths)
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    assert fast[3].abs().max() == 0, "an empty row's query is zero, as encode gives it"
    weights = torch.randn_like(full)
    grads = [
        torch.autograd.grad((out * weights).sum(), list(model.parameters()), allow_unused=True)
        for out in (full, fast)
    ]
    for p, g_full, g_fast in zip(model.parameters(), *grads, strict=True):
        if g_full is None:
            assert g_fast is None or g_fast.abs().max() == 0
            continue
        torch.testing.assert_close(g_fast, g_full, rtol=1e-4, atol=1e-5, msg=f"{p.shape}")


def test_scoring_contract() -> None:
    model = _model("hstu-untied-cosine")
    items, ts, lengths = random_batch(2, 5, [5, 2])
    hidden = model.encode(items, ts, lengths)
    query = model.query_vectors(hidden)
    valid = items != 0
    torch.testing.assert_close(query.norm(dim=-1)[valid], torch.ones(7))
    table = model.item_vectors()
    assert table.shape == (NUM_ITEMS + 1, 16)
    assert table[0].abs().max() == 0  # padding row
    torch.testing.assert_close(table[1:].norm(dim=-1), torch.ones(NUM_ITEMS))
    ids = torch.tensor([[3, 4], [5, 6]])
    torch.testing.assert_close(model.item_vectors(ids), table[ids])
    assert model.temperature == 0.05
    logits = model.logits(hidden)
    torch.testing.assert_close(logits, query @ table.T / 0.05)
    torch.testing.assert_close(
        model.logits(hidden[:, -1], ids), logits[:, -1].gather(1, ids), rtol=1e-5, atol=1e-5
    )


def test_tied_table_is_shared() -> None:
    model = _model("hstu")
    assert model.out_emb is None
    assert model.item_vectors().data_ptr() == model.item_emb.weight.data_ptr()


def test_side_features_enter_input_and_output_item_vectors() -> None:
    model = _model("sasrec", num_item_features=5, item_feature_slots=3)
    items, ts, lengths = random_batch(2, 4, [4, 4])
    with torch.no_grad():
        plain_h, plain_v = model.encode(items, ts, lengths), model.item_vectors()
        table = torch.randint(0, 6, (NUM_ITEMS + 1, 3))
        table[0] = 0
        model.set_item_features(table)
        with_h, with_v = model.encode(items, ts, lengths), model.item_vectors()
    assert not torch.allclose(with_h, plain_h)
    expected = plain_v + model.feature_emb(table).sum(-2)
    torch.testing.assert_close(with_v, expected)
    torch.testing.assert_close(model.item_vectors(items), expected[items])
    assert with_v[0].abs().sum() == 0  # padding stays empty
    with pytest.raises(ValueError, match="shape"):
        model.set_item_features(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"0\.\.5"):
        model.set_item_features(torch.full((NUM_ITEMS + 1, 3), 6))
    with pytest.raises(ValueError, match="num_item_features"):
        _model("hstu").set_item_features(table)


def test_behaviours_are_an_input_and_an_auxiliary_target() -> None:
    model = _model("hstu", behaviour_levels=[1.0, 2.0, 4.5], predict_behaviour=True)
    items, ts, lengths = random_batch(2, 4, [4, 3])
    ids = model.behaviour_ids(torch.tensor([1.0, 4.5, 2.0, 0.0, float("nan"), 3.0]))
    assert ids.tolist() == [1, 3, 2, 0, 0, 0]
    ratings = torch.tensor([[1.0, 2.0, 4.5, 1.0], [2.0, 2.0, 1.0, 0.0]])
    with torch.no_grad():
        h = model.encode(items, ts, lengths, ratings)
        other = ratings.clone()
        other[0, 2] = 1.0
        h2 = model.encode(items, ts, lengths, other)
        logits = model.behaviour_logits(h, items)
    # Causal in behaviours too: changing position 2 leaves positions 0-1 alone.
    torch.testing.assert_close(h[:, :2], h2[:, :2])
    assert not torch.allclose(h[0, 2:], h2[0, 2:])
    assert logits.shape == (2, 4, 3)
    with pytest.raises(ValueError, match="behaviours"):
        model.encode(items, ts, lengths)
    with pytest.raises(ValueError, match="behaviour_levels"):
        _model("hstu", predict_behaviour=True)


@pytest.mark.parametrize("name", ["sasrec", "esasrec", "gpt", "llama", "hstu"])
def test_longer_than_max_len_is_refused(name: str) -> None:
    items, ts, lengths = random_batch(1, 13, [13])
    with pytest.raises(ValueError, match="max_len"):
        _model(name).encode(items, ts, lengths)


def test_layer_dropout_schedule_reaches_the_blocks() -> None:
    model = _model("gpt", layers=3, layer_dropout="linear", dropout_first=0.3, dropout_last=0.1)
    rates = [block.drop.p for block in model.encoder.blocks]
    assert rates == pytest.approx([0.3, 0.2, 0.1])
    hstu = _model("hstu", layers=2, layer_dropout="linear", dropout_first=0.4, dropout_last=0.0)
    assert [layer.drop.p for layer in hstu.encoder.layers] == pytest.approx([0.4, 0.0])


def test_lengths_default_to_nonzero_count() -> None:
    model = _model("hstu")
    items, ts, lengths = random_batch(2, 6, [6, 3])
    with torch.no_grad():
        torch.testing.assert_close(model.encode(items, ts), model.encode(items, ts, lengths))


@pytest.mark.parametrize("name", ["sasrec", "esasrec", "gpt", "llama", "hstu", "hstu-rope"])
def test_meta_build_then_load_state_dict(name: str) -> None:
    """A model built on the meta device, materialised and loaded, computes the same outputs."""
    model = _model(name)
    with torch.device("meta"):
        shell = build_model(model.cfg, NUM_ITEMS)
    shell = shell.to_empty(device="cpu").eval()
    shell.load_state_dict(model.state_dict())
    items, ts, lengths = random_batch(2, 6, [6, 3])
    with torch.no_grad():
        torch.testing.assert_close(
            shell.encode(items, ts, lengths), model.encode(items, ts, lengths)
        )


@pytest.mark.parametrize(
    "name", ["sasrec", "esasrec", "gpt", "llama", "hstu", "hstu-softmax-llama-rope"]
)
def test_bf16_autocast_runs(name: str) -> None:
    model = _model(name).train()
    items, ts, lengths = random_batch(2, 6, [6, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        hidden = model.encode(items, ts, lengths)
        loss = model.logits(hidden).float().logsumexp(-1).mean()
    loss.backward()
    assert torch.isfinite(loss)


def test_item_text_enters_item_vectors_through_a_learned_projection() -> None:
    model = _model("hstu", text_dim=6)
    items, ts, lengths = random_batch(2, 4, [4, 3])
    text = torch.randn(NUM_ITEMS + 1, 6)
    text[0] = 0
    with torch.no_grad():
        plain_h = model.encode(items, ts, lengths)
        model.set_item_text(text)
        with_h, with_v = model.encode(items, ts, lengths), model.item_vectors()
    assert not torch.allclose(with_h, plain_h)
    table = (model.item_emb if model.out_emb is None else model.out_emb).weight
    expected = table + text @ model.text_proj.weight.T
    if model.cfg.l2_norm:
        expected = torch.nn.functional.normalize(expected, dim=-1, eps=1e-6)
    torch.testing.assert_close(with_v, expected)
    # The text table is data (a buffer in the checkpoint), the projection learns.
    assert "item_text" in model.state_dict()
    assert all(p is not model.item_text for p in model.parameters())
    model.logits(model.encode(items, ts, lengths)[:, -1]).sum().backward()
    assert model.text_proj.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shape"):
        model.set_item_text(torch.zeros(3, 6))
    with pytest.raises(ValueError, match="text_dim"):
        _model("hstu").set_item_text(text)


@pytest.mark.parametrize("backbone", ["sasrec", "hstu", "llama"])
def test_scale_inputs_overrides_the_backbone_rule(backbone: str) -> None:
    default = _model(backbone)
    flipped = _model(backbone, scale_inputs=not type(default.encoder).scale_inputs)
    scales = sorted([default._input_scale, flipped._input_scale])
    assert scales == [1.0, pytest.approx(default.cfg.dim**0.5)]


def test_sasrec_final_norm_normalises_the_last_hidden_states() -> None:
    model = _model("sasrec", sasrec={"final_norm": True}).eval()
    assert model.encoder.final_norm is not None
    items, timestamps, lengths = random_batch(3, 6, [6, 4, 2])
    with torch.no_grad():
        hidden = model.encode(items, timestamps, lengths)
    real = hidden[items != 0]
    # a gain-free LayerNorm: every real position has mean 0 and variance 1 across D
    torch.testing.assert_close(real.mean(-1), torch.zeros(len(real)), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        real.var(-1, unbiased=False), torch.ones(len(real)), atol=1e-3, rtol=0
    )
    assert _model("sasrec").encoder.final_norm is None


def test_sasrec_inverse_positions_give_the_last_item_row_zero() -> None:
    model = _model("sasrec", sasrec={"positions": "inverse"})
    model.encoder.blocks = torch.nn.ModuleList()  # inputs reach the output unchanged
    items = torch.tensor([[3, 4, 5], [5, 0, 0]])
    with torch.no_grad():
        hidden = model.encode(items, None, torch.tensor([3, 1]))
    # no blocks: the hidden state is item·sqrt(D) + its position row, and both users end in item 5
    torch.testing.assert_close(hidden[0, 2], hidden[1, 0])
    causal = torch.ones(3, 3, dtype=torch.bool).tril()[None]
    ranking = Attend(causal, torch.arange(3)[None], torch.arange(3)[None])
    with pytest.raises(ValueError, match="absolute"):
        model.encoder(torch.zeros(1, 3, 16), None, torch.tensor([3]), ranking)
