"""SequenceRecommender's item tables: their dropout (RecTools' item-net dropout) and init."""

from __future__ import annotations

import pytest
import torch

from recscale.models import ModelConfig, build_model
from recscale.models.ranker import build_ranker
from tests.models.model_cases import NUM_ITEMS, TINY, random_batch


def _model(p: float, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(
        ModelConfig(backbone="esasrec", item_dropout=p, **{**TINY, **overrides}), NUM_ITEMS
    )


def test_item_dropout_is_off_in_eval_mode() -> None:
    items, _, lengths = random_batch(4, 10, [10, 6, 1, 3], seed=1)
    plain, dropped = _model(0.0).eval(), _model(0.5).eval()
    torch.testing.assert_close(
        dropped.encode(items, lengths=lengths), plain.encode(items, lengths=lengths)
    )
    torch.testing.assert_close(dropped.item_vectors(), plain.item_vectors())


def test_one_mask_per_pass_shared_by_inputs_and_outputs() -> None:
    p = 0.5
    model = _model(p).train()
    items, _, lengths = random_batch(4, 10, [10, 6, 2, 3], seed=2)
    hidden = model.encode(items, lengths=lengths)
    table = model.item_vectors()
    weight = model.item_emb.weight
    # Surviving entries are scaled by 1 / (1 - p), dropped ones are zero.
    kept = table[1:] != 0
    torch.testing.assert_close(table[1:][kept], weight[1:][kept] / (1 - p))
    assert 0.4 < kept.float().mean() < 0.6
    # Gathering ids reads the same pass's table (the sampled losses rely on it).
    ids = torch.tensor([[3, 7], [7, 1]])
    torch.testing.assert_close(model.item_vectors(ids), table[ids])
    # The encoder saw the same mask: no input gradient reaches an entry the outputs dropped.
    (grad,) = torch.autograd.grad(hidden.sum(), weight)
    seen = items[items != 0].unique()
    assert (grad[seen][table[seen] == 0] == 0).all()
    assert (grad[seen][table[seen] != 0] != 0).float().mean() > 0.9
    # The next pass draws a new mask.
    model.encode(items, lengths=lengths)
    assert not torch.equal(model.item_vectors() != 0, table != 0)


def test_an_untied_output_table_is_dropped_too() -> None:
    model = _model(0.5, tied=False).train()
    items, _, lengths = random_batch(2, 10, [10, 4], seed=3)
    model.encode(items, lengths=lengths)
    out = model.item_vectors()
    torch.testing.assert_close(out[1:][out[1:] != 0], 2 * model.out_emb.weight[1:][out[1:] != 0])


@pytest.mark.parametrize("p", [-0.1, 1.0])
def test_item_dropout_outside_zero_to_one_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="item_dropout"):
        ModelConfig(item_dropout=p)


@pytest.mark.parametrize("ranker", ["target_aware", "din"])
def test_rankers_refuse_item_dropout(ranker: str) -> None:
    cfg = ModelConfig(backbone="hstu", item_dropout=0.2, **TINY)
    with pytest.raises(ValueError, match=r"model\.item_dropout is 0\.2"):
        build_ranker(ranker, cfg, NUM_ITEMS)


@pytest.mark.parametrize("tied", [True, False])
def test_xavier_item_init_has_xavier_spread_and_a_zero_padding_row(tied: bool) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(**{**TINY, "backbone": "esasrec", "tied": tied, "item_init": "xavier-normal"})
    model = build_model(cfg, 4000)
    expected = (2.0 / (4001 + cfg.dim)) ** 0.5
    tables = [model.item_emb] + ([] if tied else [model.out_emb])
    for table in tables:
        assert torch.count_nonzero(table.weight[0]) == 0
        assert table.weight[1:].std().item() == pytest.approx(expected, rel=0.05)
        # Unlike the truncated default, xavier-normal has tails past 2 std.
        assert table.weight.abs().max().item() > 3 * expected


def test_default_item_init_is_truncated_at_two_std() -> None:
    cfg = ModelConfig(**{**TINY, "backbone": "esasrec"})
    weight = build_model(cfg, 4000).item_emb.weight
    assert weight.abs().max().item() <= 2 * cfg.init_std
    assert weight[1:].std().item() == pytest.approx(0.88 * cfg.init_std, rel=0.05)


@pytest.mark.parametrize("ranker", ["din", "target_aware"])
def test_rankers_take_the_item_init_too(ranker: str) -> None:
    cfg = ModelConfig(**{**TINY, "item_init": "xavier-normal", "init_std": 1e-4})
    ranker = build_ranker(ranker, cfg, 4000)
    assert ranker.item_emb.weight.abs().max().item() > 10 * cfg.init_std


def test_every_item_init_the_config_allows_has_an_initialiser() -> None:
    from typing import get_args

    from recscale.models.base import ID_TABLE_INITS

    allowed = get_args(ModelConfig.model_fields["item_init"].annotation)
    assert set(allowed) == set(ID_TABLE_INITS)
