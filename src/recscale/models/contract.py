"""The model contract that losses, the evaluator and the challenge tasks rely on.

Typed as a :class:`typing.Protocol` so a test fake or a user's own module serves the same
code paths as :class:`recscale.models.base.SequenceRecommender` without subclassing it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Recommender(Protocol):
    """Causal hidden states, query and item vectors; logits = query @ items.T / temperature."""

    num_items: int
    temperature: float
    training: bool

    def encode(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        behaviours: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """items [B, N] (0 = padding) -> hidden [B, N, D]."""
        ...

    def query_vectors(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., D] -> [..., D]."""
        ...

    def item_vectors(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """ids [...] -> [..., D]; every row 0..num_items when ids is None."""
        ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def eval(self) -> Recommender: ...

    def train(self, mode: bool = True) -> Recommender: ...
