"""M-FALCON (HSTU paper §3.4, App. H): many candidates for one history, in micro-batches.

The history is encoded once and each layer's keys and values are kept; the m candidates
then go through the layers in ceil(m / b) micro-batches of b tokens that attend to the
cached history keys and to themselves only (the mask keeps candidates from seeing each
other), so each micro-batch costs O(b·d² + b·n·d) instead of a pass over n + b tokens.
The scores equal one pass per candidate (``tests/models/test_falcon.py`` holds them equal).
"""

from __future__ import annotations

import torch

from recscale.models.attention import Attend
from recscale.models.ranker import (
    RankingInputs,
    TargetAwareRanker,
    candidate_mask,
    history_attend,
)


@torch.no_grad()
def score_candidates(
    ranker: TargetAwareRanker,
    items: torch.Tensor,
    lengths: torch.Tensor,
    labels: torch.Tensor,
    candidates: torch.Tensor,
    micro_batch: int = 64,
) -> torch.Tensor:
    """Logits [B, M] of every candidate after its row's whole history.

    items, labels: [B, N]; lengths: [B]; candidates: [B, M] (0 = padding, scored anyway).
    """
    if micro_batch < 1:
        raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
    t, n = ranker.tokens_per_item, items.shape[1]
    cache: list[tuple[torch.Tensor, torch.Tensor]] = []
    history = history_attend(lengths, n, t)
    history.store = cache
    ranker.encode(ranker.history_tokens(items, labels), history)
    scores = []
    for chunk in candidates.split(micro_batch, dim=1):
        b = chunk.shape[1]
        positions = (t * lengths)[:, None].expand(len(lengths), b)
        attend = Attend(
            mask=candidate_mask(lengths[:, None].expand(-1, b), n, b, t),
            positions=positions,
            key_positions=torch.cat([history.positions, positions], dim=1),
            past=cache,
        )
        state = ranker.encode(ranker.candidate_tokens(chunk), attend)
        scores.append(ranker.scorer(state, ranker.item_emb(chunk)))
    return torch.cat(scores, dim=1)


@torch.no_grad()
def score_one_by_one(
    ranker: TargetAwareRanker,
    items: torch.Tensor,
    lengths: torch.Tensor,
    labels: torch.Tensor,
    candidates: torch.Tensor,
) -> torch.Tensor:
    """The reference: one full pass over [history; candidate] per candidate."""
    out = []
    for j in range(candidates.shape[1]):
        batch = RankingInputs(items, lengths, labels, candidates[:, j : j + 1], lengths[:, None])
        out.append(ranker(batch)[1])
    return torch.cat(out, dim=1)
