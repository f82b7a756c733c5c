"""Rankers: the probability that a user engages with a candidate, given their history.

Every ranker maps one :class:`RankingInputs` batch to logits for two kinds of example at once:

- ``history``: item t of each history, scored from the items before it (the training
  positives, and under ``like_threshold`` the rated items with their like / dislike labels);
- ``candidates``: extra items, each scored from the first ``prefix`` history items (sampled
  negatives in training; the held-out item and its negatives in evaluation).

:class:`TargetAwareRanker` runs a retrieval backbone (HSTU, Llama-style, SASRec: any encoder
with ``supports_attend``) over the history tokens followed by the candidate tokens, with a
mask under which a candidate sees only its history prefix and itself, so the candidate is an
input the history is read against (the HSTU paper's ranking model). With ``interleave`` each
history item is followed by an action token carrying its label, as HSTU interleaves items and
actions; a scored item token never sees its own action. DIN (``models/din.py``) is the
classic baseline. The scoring network that turns the final state and the candidate's vector
into a logit is a switch (``SCORERS``: ``dot``, ``mlp``, ``ffn``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from recscale.models.attention import Attend
from recscale.models.base import embedding_table, refuse_item_dropout
from recscale.models.config import ModelConfig
from recscale.models.encoder import ENCODERS, attend_backbones
from recscale.registry import Registry

RANKERS: Registry[type[nn.Module]] = Registry("ranker")
SCORERS: Registry[type[nn.Module]] = Registry("scorer")


@dataclass
class RankingInputs:
    """One batch, right-padded.

    items: [B, N] history ids (0 = padding); lengths: [B]; labels: [B, N] float labels of
    the history items (1 under implicit feedback); candidates: [B, M] ids (0 = padding);
    prefix: [B, M] how many history items each candidate sees (<= lengths).
    """

    items: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    candidates: torch.Tensor
    prefix: torch.Tensor

    def to(self, device: torch.device) -> RankingInputs:
        return RankingInputs(*(t.to(device) for t in vars(self).values()))


# ---- scoring networks: (state [..., D], candidate vector [..., D]) -> logit [...] ------------
@SCORERS.register("dot")
class DotScorer(nn.Module):
    """state · candidate / sqrt(D) + a learned bias (the base rate)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = 1.0 / math.sqrt(dim)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, state: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return (state * candidate).sum(-1) * self.scale + self.bias


@SCORERS.register("mlp")
class MLPScorer(nn.Module):
    """An MLP over (state, candidate, state * candidate) with one hidden layer of width D."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def forward(self, state: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([state, candidate, state * candidate], -1)).squeeze(-1)


@SCORERS.register("ffn")
class FFNScorer(nn.Module):
    """A point-wise FFN (width 4D) on the state alone: the state already read the candidate."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, 1))

    def forward(self, state: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return self.net(state).squeeze(-1)


def label_ids(labels: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """History labels -> action ids: 0 padding, 1 not engaged, 2 engaged."""
    return torch.where(items != 0, 1 + (labels > 0.5).long(), torch.zeros_like(items))


@RANKERS.register("target_aware")
class TargetAwareRanker(nn.Module):
    """A backbone reading the history tokens, then the candidate tokens, under the ranking mask."""

    def __init__(self, cfg: ModelConfig, num_items: int, scorer: str, interleave: bool) -> None:
        super().__init__()
        refuse_item_dropout(cfg, "target-aware ranker")
        encoder_class = ENCODERS.get(cfg.backbone)
        if not encoder_class.supports_attend:
            raise ValueError(
                f"backbone {cfg.backbone!r} cannot rank; allowed: "
                f"{', '.join(attend_backbones())}, or ranker din"
            )
        self.cfg = cfg
        self.tokens_per_item = 2 if interleave else 1
        self.item_emb = embedding_table(num_items + 1, cfg.dim, cfg.init_std, cfg.item_init)
        self.action_emb = embedding_table(3, cfg.dim, cfg.init_std) if interleave else None
        self.encoder = encoder_class(cfg)
        self.scorer = SCORERS.get(scorer)(cfg.dim)
        self._input_scale = encoder_class.input_scale(cfg)

    @property
    def history_window(self) -> int:
        """History items one pass can hold (candidates sit at position ``prefix`` too)."""
        return (self.cfg.max_len - 1) // self.tokens_per_item

    def history_tokens(self, items: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """[B, N] -> [B, tokens_per_item · N, D]: item vectors, each followed by its action."""
        x = self.item_emb(items)
        if self.action_emb is not None:
            actions = self.action_emb(label_ids(labels, items))
            x = torch.stack([x, actions], dim=2).flatten(1, 2)
        return x * self._input_scale

    def candidate_tokens(self, candidates: torch.Tensor) -> torch.Tensor:
        return self.item_emb(candidates) * self._input_scale

    def encode(self, x: torch.Tensor, attend: Attend) -> torch.Tensor:
        # On the attend path the mask says which tokens are real; lengths are not read.
        lengths = torch.full((x.shape[0],), x.shape[1], device=x.device)
        return self.encoder(x, None, lengths, attend)

    def forward(self, batch: RankingInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (history logits [B, N], candidate logits [B, M])."""
        t, n = self.tokens_per_item, batch.items.shape[1]
        x = torch.cat(
            [
                self.history_tokens(batch.items, batch.labels),
                self.candidate_tokens(batch.candidates),
            ],
            dim=1,
        )
        hidden = self.encode(x, joint_attend(batch.lengths, batch.prefix, n, t))
        history_state, candidate_state = hidden[:, : t * n : t], hidden[:, t * n :]
        return (
            self.scorer(history_state, self.item_emb(batch.items)),
            self.scorer(candidate_state, self.item_emb(batch.candidates)),
        )


def history_attend(lengths: torch.Tensor, n: int, tokens_per_item: int = 1) -> Attend:
    """Causal attention over right-padded history tokens alone (padded keys masked; a padded
    query sees itself so no row is empty)."""
    t = tokens_per_item * n
    idx = torch.arange(t, device=lengths.device)
    valid_key = idx[None, :] < tokens_per_item * lengths[:, None]  # [B, T]
    mask = (idx[None, :, None] >= idx[None, None, :]) & valid_key[:, None, :]
    mask = mask | torch.eye(t, dtype=torch.bool, device=lengths.device)
    positions = idx.expand(len(lengths), t)
    return Attend(mask, positions, positions)


def candidate_mask(
    lengths_or_prefix: torch.Tensor, n: int, m: int, tokens_per_item: int
) -> torch.Tensor:
    """[B, M, T + M]: candidate j sees the first ``tokens_per_item · prefix[b, j]`` history
    tokens and itself, never another candidate."""
    t = tokens_per_item * n
    device = lengths_or_prefix.device
    sees = (
        torch.arange(t, device=device)[None, None, :]
        < tokens_per_item * lengths_or_prefix[..., None]
    )
    own = torch.eye(m, dtype=torch.bool, device=device).expand(len(lengths_or_prefix), m, m)
    return torch.cat([sees, own], dim=-1)


def joint_attend(
    lengths: torch.Tensor, prefix: torch.Tensor, n: int, tokens_per_item: int = 1
) -> Attend:
    """History tokens causally, then every candidate at position ``tokens_per_item · prefix``."""
    history = history_attend(lengths, n, tokens_per_item)
    b, m, t = len(lengths), prefix.shape[1], tokens_per_item * n
    top = torch.cat([history.mask, history.mask.new_zeros(b, t, m)], dim=-1)
    mask = torch.cat([top, candidate_mask(prefix, n, m, tokens_per_item)], dim=1)
    positions = torch.cat([history.positions, tokens_per_item * prefix], dim=1)
    return Attend(mask, positions, positions)


def build_ranker(
    name: str, cfg: ModelConfig, num_items: int, scorer: str = "dot", interleave: bool = False
) -> nn.Module:
    """The ranker ``name`` (``RANKERS``) for item ids 1..num_items."""
    return RANKERS.get(name)(cfg, num_items, scorer, interleave)
