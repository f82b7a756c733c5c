"""The one contract every backbone serves, and ``build_model``.

A :class:`SequenceRecommender` owns the item table(s) and the scoring rule; the backbone
(an :class:`Encoder` from the ``ENCODERS`` registry) maps input vectors to causal hidden
states. Logits are ``query_vectors(hidden) @ item_vectors().T / temperature``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from recscale.models.config import ModelConfig
from recscale.registry import Registry


class Encoder(nn.Module):
    """A causal backbone: ``forward(x [B,N,D], timestamps [B,N] | None, lengths [B]) -> [B,N,D]``.

    ``x`` holds item (+ side-feature) vectors of right-padded sequences; the encoder adds
    its positional information and embedding dropout. Subclasses also give their exact
    parameter count and multiply-accumulates per token as closed forms of the config, which
    ``models/size.py`` checks against the built module.
    """

    # Multiply item vectors by sqrt(D) before the positions are added (SASRec / HSTU code).
    scale_inputs: ClassVar[bool] = False

    @staticmethod
    def param_counts(cfg: ModelConfig) -> tuple[int, int]:
        """(non-embedding, embedding-like) parameters of the encoder alone."""
        raise NotImplementedError

    @staticmethod
    def macs_per_token(cfg: ModelConfig, seq_len: int) -> tuple[int, int]:
        """(dense, attention) multiply-accumulates per token in one forward pass."""
        raise NotImplementedError


ENCODERS: Registry[type[Encoder]] = Registry("backbone")


class SequenceRecommender(nn.Module):
    """Item embeddings + a causal encoder + dot/cosine scoring.

    Attributes:
        item_emb: [num_items + 1, D] input table (row 0 = padding, kept at zero).
        out_emb: [num_items + 1, D] output table when ``cfg.tied`` is False.
        temperature: logits are divided by it.
    """

    def __init__(self, cfg: ModelConfig, num_items: int, encoder: Encoder) -> None:
        super().__init__()
        if num_items < 1:
            raise ValueError(f"num_items must be >= 1, got {num_items}")
        self.cfg = cfg
        self.num_items = num_items
        self.temperature = float(cfg.temperature)
        self.item_emb = self._table(num_items + 1, cfg.dim, cfg.init_std)
        self.out_emb = None if cfg.tied else self._table(num_items + 1, cfg.dim, cfg.init_std)
        self.feature_emb = (
            self._table(cfg.num_item_features + 1, cfg.dim, cfg.init_std)
            if cfg.num_item_features
            else None
        )
        self.encoder = encoder
        self._input_scale = math.sqrt(cfg.dim) if encoder.scale_inputs else 1.0

    @staticmethod
    def _table(rows: int, dim: int, std: float) -> nn.Embedding:
        table = nn.Embedding(rows, dim, padding_idx=0)
        nn.init.trunc_normal_(table.weight, std=std, a=-2 * std, b=2 * std)
        with torch.no_grad():
            table.weight[0].zero_()
        return table

    def encode(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        item_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Causal hidden states.

        Args:
            items: [B, N] item ids, right-padded with 0.
            timestamps: [B, N] int64 seconds, or None.
            lengths: [B] number of real items per row; derived from ``items != 0`` when None.
            item_features: [B, N, F] side-feature ids (0 = none), summed into the item vector.

        Returns:
            [B, N, D]; position t depends only on positions <= t; padded positions are zero.
        """
        valid = items != 0
        if lengths is None:
            lengths = valid.sum(1)
        x = self.item_emb(items)
        if item_features is not None:
            if self.feature_emb is None:
                raise ValueError("item_features given but the config has num_item_features = 0")
            x = x + self.feature_emb(item_features).sum(-2)
        x = x * self._input_scale
        hidden = self.encoder(x, timestamps, lengths)
        return hidden * valid.unsqueeze(-1).to(hidden.dtype)

    def query_vectors(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: [..., D] -> [..., D] (unit length under cosine scoring)."""
        return F.normalize(hidden, dim=-1, eps=1e-6) if self.cfg.l2_norm else hidden

    def item_vectors(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Output item vectors: ids [...] -> [..., D]; all rows 0..num_items when ids is None."""
        table = (self.item_emb if self.out_emb is None else self.out_emb).weight
        vectors = table if ids is None else F.embedding(ids, table)
        return F.normalize(vectors, dim=-1, eps=1e-6) if self.cfg.l2_norm else vectors

    def logits(self, hidden: torch.Tensor, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Full-catalogue scores: hidden [..., D] -> [..., num_items + 1] (ids None), else
        hidden [..., D] with ids [..., K] -> [..., K]."""
        query = self.query_vectors(hidden)
        if ids is None:
            return query @ self.item_vectors().T / self.temperature
        return (query.unsqueeze(-2) * self.item_vectors(ids)).sum(-1) / self.temperature


def build_model(cfg: ModelConfig, num_items: int) -> SequenceRecommender:
    """Build the recommender named by ``cfg.backbone`` for item ids 1..num_items.

    Builds on the current default device: ``with torch.device("meta"): build_model(...)``
    sizes a model without allocating it.
    """
    encoder = ENCODERS.get(cfg.backbone)(cfg)
    return SequenceRecommender(cfg, num_items, encoder)
