"""The semantic-ID retriever: level-masked causal logits, and beam search that only ever
decodes real items (exact when the beam holds every prefix)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recscale.models.config import ModelConfig
from recscale.models.generative import SemanticIdRetriever, beam_search, num_params
from recscale.models.semantic_ids import SemanticIds, semantic_ids

NUM_ITEMS = 40


@pytest.fixture(scope="module")
def sids() -> SemanticIds:
    """40 items, 2 k-means levels of 4 codes plus the collision level: 3 codes per item."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 16))[rng.integers(5, size=NUM_ITEMS)]
    ids, _ = semantic_ids(vectors + 0.3 * rng.normal(size=(NUM_ITEMS, 16)), 2, 4)
    assert ids.num_levels == 3
    return ids


def _model(sids: SemanticIds, backbone: str = "llama", seed: int = 0) -> SemanticIdRetriever:
    torch.manual_seed(seed)
    cfg = ModelConfig(
        backbone=backbone, dim=16, layers=1, heads=2, max_len=5, dropout=0.0, emb_dropout=0.0
    )
    return SemanticIdRetriever(cfg, sids)


HISTORIES = torch.tensor([[3, 9, 27, 0, 0], [1, 0, 0, 0, 0], [5, 6, 7, 8, 40]])


@pytest.mark.parametrize("backbone", ["llama", "gpt"])
def test_logits_cover_only_the_next_level(sids: SemanticIds, backbone: str) -> None:
    model = _model(sids, backbone)
    tokens = model.token_ids(HISTORIES)
    logits = model(tokens)
    assert tokens.shape == (3, 15) and logits.shape == (3, 15, sids.vocab_size)
    for t in range(15):
        level = (t + 1) % 3
        first = 1 + sids.offsets[level]
        inside = torch.zeros(sids.vocab_size, dtype=torch.bool)
        inside[first : first + sids.level_sizes[level]] = True
        assert torch.isfinite(logits[:, t, inside]).all()
        assert (logits[:, t, ~inside] == float("-inf")).all()


def test_loss_is_finite_and_trains_every_weight(sids: SemanticIds) -> None:
    model = _model(sids)
    loss = model.loss(HISTORIES)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.token_emb.weight.grad[1:].abs().sum() > 0
    counts = num_params(model)
    assert counts["embedding"] == sids.vocab_size * 16
    assert counts["non_embedding"] + counts["embedding"] == sum(
        p.numel() for p in model.parameters()
    )


def test_logits_are_causal(sids: SemanticIds) -> None:
    model = _model(sids).eval()
    tokens = model.token_ids(HISTORIES[2:])
    changed = tokens.clone()
    changed[0, 6] = 1 + (tokens[0, 6] - 1 + 1) % sids.level_sizes[0]  # item 3's first code
    before, after = model(tokens), model(changed)
    assert torch.allclose(before[:, :6], after[:, :6])
    assert not torch.allclose(before[:, 6:], after[:, 6:])


def test_checkpoint_holds_the_codes_and_rebuilds_the_trie(sids: SemanticIds) -> None:
    model = _model(sids)
    state = model.state_dict()
    assert "codes" in state and not any(k.startswith("trie") for k in state)
    # Same code set, items renumbered: the loaded codes must decide what beam search returns.
    perm = np.concatenate([[0], np.random.default_rng(1).permutation(NUM_ITEMS) + 1])
    other = _model(SemanticIds(codes=sids.codes[perm], level_sizes=sids.level_sizes), seed=1)
    other.load_state_dict(state)
    for a, b in zip(
        beam_search(model, HISTORIES, 6, 4), beam_search(other, HISTORIES, 6, 4), strict=True
    ):
        assert torch.equal(a, b)


def test_unsupported_backbone_is_refused(sids: SemanticIds) -> None:
    with pytest.raises(ValueError, match="allowed: gpt, hstu, llama, sasrec"):
        _model(sids, "esasrec")


@pytest.mark.parametrize("backbone", ["llama", "gpt"])
def test_beam_search_returns_only_real_unseen_items(sids: SemanticIds, backbone: str) -> None:
    model = _model(sids, backbone)
    found, scores = beam_search(model, HISTORIES, beam=12, topk=8, exclude=HISTORIES)
    assert found.shape == scores.shape == (3, 8) and found.dtype == torch.int64
    for row, row_scores, history in zip(found, scores, HISTORIES, strict=True):
        real = row[torch.isfinite(row_scores)]
        assert len(real) >= 1 and (row[~torch.isfinite(row_scores)] == 0).all()
        assert ((real >= 1) & (real <= NUM_ITEMS)).all()
        assert len(set(real.tolist())) == len(real)
        assert not set(real.tolist()) & set(history.tolist())
        for item in real.tolist():
            assert sids.item_of(sids.codes[item]) == item
        assert (row_scores[:-1] >= row_scores[1:]).all()


def test_too_few_items_pad_with_zero_and_minus_inf(sids: SemanticIds) -> None:
    found, scores = beam_search(_model(sids), HISTORIES, beam=2, topk=5)
    assert (found[:, 2:] == 0).all() and (scores[:, 2:] == float("-inf")).all()
    assert torch.isfinite(scores[:, :2]).all()


def test_a_full_beam_is_exact_search(sids: SemanticIds) -> None:
    """With room for every prefix, the beam ranks all items by their teacher-forced score."""
    model = _model(sids).eval()
    found, scores = beam_search(model, HISTORIES, beam=NUM_ITEMS, topk=5)
    candidates = torch.arange(1, NUM_ITEMS + 1)
    for row, history in enumerate(HISTORIES):
        n = int((history != 0).sum())
        seqs = torch.cat([history[:n].repeat(NUM_ITEMS, 1), candidates[:, None]], 1)
        tokens = model.token_ids(seqs)
        logp = model(tokens[:, :-1]).log_softmax(-1)
        targets = tokens[:, -3:]
        exact = logp[:, -3:].gather(-1, targets[..., None]).squeeze(-1).sum(-1)
        best, order = exact.sort(descending=True)
        assert found[row].tolist() == candidates[order[:5]].tolist()
        assert torch.allclose(scores[row], best[:5], atol=1e-5)


@pytest.mark.parametrize("backbone", ["llama", "hstu", "sasrec"])
@pytest.mark.parametrize("beam", [1, 6, NUM_ITEMS])
def test_cached_decoding_equals_the_reference(sids: SemanticIds, backbone: str, beam: int):
    """History keys/values kept once per layer give the same beams as re-encoding it all."""
    model = _model(sids, backbone, seed=1)
    assert model.encoder.supports_attend
    fast = beam_search(model, HISTORIES, beam=beam, topk=beam, cached=True)
    reference = beam_search(model, HISTORIES, beam=beam, topk=beam, cached=False)
    assert torch.equal(fast[0], reference[0])
    torch.testing.assert_close(fast[1], reference[1], rtol=1e-5, atol=1e-5)


def test_overfit_then_decode_the_next_item(sids: SemanticIds) -> None:
    # Disjoint item sets per sequence: every next item is determined by the history.
    sequences = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]])
    model = _model(sids).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):
        loss = model.loss(sequences)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1
    # Histories of different lengths in one right-padded batch.
    histories = torch.tensor([[1, 2, 3], [5, 6, 0], [9, 0, 0], [13, 14, 15]])
    found, _ = beam_search(model, histories, beam=4, topk=1)
    assert found[:, 0].tolist() == [4, 7, 10, 16]
    assert model.training  # beam search restores the mode it found
