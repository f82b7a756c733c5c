"""M-FALCON: scores equal to one pass per candidate, for any micro-batch size."""

from __future__ import annotations

import pytest
import torch

from recscale.models import ModelConfig, RankingInputs, build_ranker
from recscale.models.encoder import attend_backbones
from recscale.models.falcon import score_candidates, score_one_by_one

ATTEND_BACKBONES = attend_backbones()


@pytest.mark.parametrize("backbone", ATTEND_BACKBONES)
@pytest.mark.parametrize("interleave", [False, True])
def test_micro_batched_cached_scores_equal_one_pass_per_candidate(backbone, interleave):
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, dim=16, layers=3, heads=2, max_len=40, dropout=0.1)
    ranker = build_ranker("target_aware", cfg, 50, "mlp", interleave).eval()
    lengths = torch.tensor([12, 5, 1, 9])
    items = torch.randint(1, 51, (4, 12))
    items[torch.arange(12)[None, :] >= lengths[:, None]] = 0
    labels = (torch.rand(4, 12) > 0.5).float()
    candidates = torch.randint(1, 51, (4, 11))
    reference = score_one_by_one(ranker, items, lengths, labels, candidates)
    for micro_batch in (1, 4, 11, 64):
        got = score_candidates(ranker, items, lengths, labels, candidates, micro_batch)
        torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-5)
    # and the training pass, every candidate appended at once, agrees too
    prefix = lengths[:, None].expand(4, 11)
    joint = ranker(RankingInputs(items, lengths, labels, candidates, prefix))
    torch.testing.assert_close(joint[1], reference, rtol=1e-5, atol=1e-5)


def test_micro_batch_must_be_positive():
    cfg = ModelConfig(backbone="hstu", dim=8, layers=1, heads=1, max_len=8)
    ranker = build_ranker("target_aware", cfg, 5).eval()
    one = torch.ones(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="micro_batch"):
        score_candidates(ranker, one, torch.tensor([2]), one.float(), one, 0)
