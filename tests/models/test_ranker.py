"""Rankers: the ranking mask path equals the causal one, and each example sees only its own
history prefix (never a later item, another candidate or its own label)."""

from __future__ import annotations

import pytest
import torch

from recscale.models import ModelConfig, RankingInputs, build_model, build_ranker
from recscale.models.encoder import attend_backbones
from recscale.models.ranker import SCORERS, history_attend

ATTEND_BACKBONES = attend_backbones()


def config(backbone: str, **kw) -> ModelConfig:
    return ModelConfig(
        backbone=backbone, dim=16, layers=2, heads=2, max_len=24, dropout=0.0, emb_dropout=0.0, **kw
    )


def histories(seed: int = 0, lengths=(10, 7, 4, 1), items: int = 40):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, items + 1, (len(lengths), max(lengths)), generator=g)
    lengths = torch.tensor(lengths)
    x[torch.arange(x.shape[1])[None, :] >= lengths[:, None]] = 0
    labels = (torch.rand(x.shape, generator=g) > 0.3).float()
    return x, lengths, labels


def test_the_backbones_that_rank():
    assert set(ATTEND_BACKBONES) >= {"hstu", "llama", "sasrec"}
    with pytest.raises(ValueError, match="cannot rank"):
        build_ranker("target_aware", config("gpt"), 40)


@pytest.mark.parametrize("backbone", ATTEND_BACKBONES)
def test_the_mask_path_equals_the_causal_path_in_values_and_gradients(backbone):
    torch.manual_seed(0)
    model = build_model(config(backbone), 40).eval()
    items, lengths, _ = histories()
    valid = items != 0
    x = (model.item_emb(items) * model._input_scale).detach()
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    causal = model.encoder(x1, None, lengths)
    masked = model.encoder(x2, None, lengths, history_attend(lengths, items.shape[1]))
    torch.testing.assert_close(masked[valid], causal[valid])
    (causal[valid] ** 2).sum().backward()
    (masked[valid] ** 2).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad)


@pytest.mark.parametrize("backbone", ATTEND_BACKBONES)
@pytest.mark.parametrize("interleave", [False, True])
def test_each_example_sees_only_its_history_prefix(backbone, interleave):
    torch.manual_seed(1)
    ranker = build_ranker("target_aware", config(backbone), 40, "mlp", interleave).eval()
    items, lengths, labels = histories(2)
    g = torch.Generator().manual_seed(3)
    candidates = torch.randint(1, 41, (4, 5), generator=g)
    prefix = torch.minimum(torch.randint(1, 11, (4, 5), generator=g), lengths[:, None])
    hist, cand = ranker(RankingInputs(items, lengths, labels, candidates, prefix))

    # a candidate's score does not depend on the other candidates
    other = candidates.clone()
    other[:, 1:] = torch.randint(1, 41, other[:, 1:].shape, generator=g)
    _, cand2 = ranker(RankingInputs(items, lengths, labels, other, prefix))
    torch.testing.assert_close(cand2[:, 0], cand[:, 0])

    # nor on the history (items or labels) at or after its prefix
    later = items.clone()
    cut = int(prefix[0, 0])
    later[0, cut : int(lengths[0])] = torch.randint(1, 41, (int(lengths[0]) - cut,), generator=g)
    flipped = labels.clone()
    flipped[0, cut:] = 1 - flipped[0, cut:]
    hist3, cand3 = ranker(RankingInputs(later, lengths, flipped, candidates, prefix))
    same = prefix[0] == cut
    torch.testing.assert_close(cand3[0, same], cand[0, same])
    torch.testing.assert_close(hist3[0, :cut], hist[0, :cut])

    # a history position scores its item without its own label; the next one reads it
    own = labels.clone()
    own[0, 3] = 1 - own[0, 3]
    hist4, _ = ranker(RankingInputs(items, lengths, own, candidates, prefix))
    torch.testing.assert_close(hist4[0, :4], hist[0, :4])
    assert torch.equal(hist4[0, 4], hist[0, 4]) != interleave


@pytest.mark.parametrize("scorer", SCORERS.names())
def test_din_pools_only_the_visible_history(scorer):
    torch.manual_seed(4)
    din = build_ranker("din", config("hstu"), 40, scorer).eval()
    items, lengths, labels = histories(5)
    candidates = torch.tensor([[3, 9], [5, 7], [2, 2], [1, 8]])
    prefix = torch.tensor([[4, 10], [7, 2], [4, 1], [1, 1]])
    hist, cand = din(RankingInputs(items, lengths, labels, candidates, prefix))
    assert hist.shape == items.shape and cand.shape == candidates.shape
    later = items.clone()
    later[0, 4:10] = 11
    _, cand2 = din(RankingInputs(later, lengths, labels, candidates, prefix))
    assert cand2[0, 0] == cand[0, 0] and cand2[0, 1] != cand[0, 1]


def test_every_scorer_trains_a_ranker_that_separates_two_items():
    # item 1 always engaged, item 2 never: a few steps must rank 1 above 2 for every scorer
    for scorer in SCORERS.names():
        torch.manual_seed(0)
        ranker = build_ranker("target_aware", config("hstu"), 5, scorer)
        opt = torch.optim.Adam(ranker.parameters(), lr=1e-2)
        items = torch.tensor([[3, 4, 5, 3]] * 8)
        lengths = torch.full((8,), 4)
        batch = RankingInputs(
            items, lengths, torch.ones(8, 4), torch.tensor([[1, 2]] * 8), torch.full((8, 2), 4)
        )
        for _ in range(30):
            _, logits = ranker(batch)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, torch.tensor([[1.0, 0.0]] * 8)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        ranker.eval()
        _, logits = ranker(batch)
        assert (logits[:, 0] > logits[:, 1]).all(), scorer
