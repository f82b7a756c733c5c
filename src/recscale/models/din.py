"""DIN (Zhou et al., KDD 2018): the candidate attends over the history, then a scoring network.

Each history item h gets the weight ``a(h, c) = w · ReLU(W [h, c, h ⊙ c] + b)`` for candidate
c (DIN's activation unit, outer-product term as the element-wise product; no softmax, so the
pooled vector keeps the strength of the interest); the user vector is the weighted sum over
the items the candidate may see, and the scoring network (``SCORERS``) turns it and c into a
logit. Under ``interleave`` a history item's vector carries its label (an action embedding
added), DIN's way of reading behaviour.
"""

from __future__ import annotations

import torch
from torch import nn

from recscale.models.base import embedding_table, refuse_item_dropout
from recscale.models.config import ModelConfig
from recscale.models.ranker import RANKERS, SCORERS, RankingInputs, label_ids

# Candidates whose [B, K, N, D] activation-unit inputs are built at once: bounds memory.
QUERY_CHUNK = 32


@RANKERS.register("din")
class DIN(nn.Module):
    """DIN: the candidate's activation unit weighs each visible history item, then a scorer."""

    def __init__(self, cfg: ModelConfig, num_items: int, scorer: str, interleave: bool) -> None:
        super().__init__()
        refuse_item_dropout(cfg, "DIN ranker")
        d = cfg.dim
        self.cfg = cfg
        self.item_emb = embedding_table(num_items + 1, d, cfg.init_std, cfg.item_init)
        self.action_emb = embedding_table(3, d, cfg.init_std) if interleave else None
        self.history_proj = nn.Linear(d, d)
        self.candidate_proj = nn.Linear(d, d, bias=False)
        self.product_proj = nn.Linear(d, d, bias=False)
        self.weight_out = nn.Linear(d, 1)
        self.drop = nn.Dropout(cfg.dropout)
        self.scorer = SCORERS.get(scorer)(d)

    @property
    def history_window(self) -> int:
        return self.cfg.max_len

    def pooled(
        self, history: torch.Tensor, sees: torch.Tensor, queries: torch.Tensor
    ) -> torch.Tensor:
        """history [B, N, D], sees [B, K, N] bool, queries [B, K, D] -> [B, K, D]."""
        out = []
        h_part = self.history_proj(history)[:, None]  # [B, 1, N, D]
        for lo in range(0, queries.shape[1], QUERY_CHUNK):
            q = queries[:, lo : lo + QUERY_CHUNK, None]  # [B, k, 1, D]
            unit = torch.relu(
                h_part + self.candidate_proj(q) + self.product_proj(history[:, None] * q)
            )
            weights = self.weight_out(unit).squeeze(-1) * sees[:, lo : lo + QUERY_CHUNK]
            out.append(weights @ history)
        return torch.cat(out, dim=1)

    def forward(self, batch: RankingInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (history logits [B, N], candidate logits [B, M]), as every ranker."""
        items, n = batch.items, batch.items.shape[1]
        history = self.item_emb(items)
        if self.action_emb is not None:
            history = history + self.action_emb(label_ids(batch.labels, items))
        history = self.drop(history)
        idx = torch.arange(n, device=items.device)
        prefix = torch.cat([idx.expand(len(items), n), batch.prefix], dim=1)  # [B, N + M]
        query_ids = torch.cat([items, batch.candidates], dim=1)
        queries = self.item_emb(query_ids)
        sees = idx[None, None, :] < prefix[..., None]
        logits = self.scorer(self.pooled(history, sees, queries), queries)
        return logits[:, :n], logits[:, n:]
