"""One test fake of the model contract (:class:`recscale.models.contract.Recommender`),
shared by the loss, evaluator and task tests."""

from __future__ import annotations

import torch
from torch import nn

from recscale.models.contract import Recommender


class LastItemModel(nn.Module):
    """Test-only recommender: the hidden state is a linear map of the current item's vector."""

    def __init__(self, num_items: int, dim: int, seed: int = 0, integer: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        if integer:  # exact scores, so ties are plentiful and float rounding cannot differ
            weight = torch.randint(-2, 3, (num_items + 1, dim), generator=g).float()
        else:
            weight = torch.randn(num_items + 1, dim, generator=g)
        weight[0] = 0
        self.emb = nn.Embedding.from_pretrained(weight, freeze=False, padding_idx=0)
        self.proj = nn.Linear(dim, dim, bias=False)
        with torch.no_grad():
            self.proj.weight.copy_(torch.eye(dim))
        self.num_items = num_items
        self.temperature = 0.5

    def encode(self, items, timestamps=None, lengths=None):
        return self.proj(self.emb(items))

    def query_vectors(self, hidden):
        return hidden

    def item_vectors(self, ids=None):
        return self.emb.weight if ids is None else self.emb(ids)


assert isinstance(LastItemModel(3, 2), Recommender)
