"""A tiny model of each backbone memorises a handful of sequences (the whole stack learns)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recscale.models import ModelConfig, build_model


def _sequences(num: int = 6, n: int = 8, items: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Random sequences with distinct first items, so every next item is determined."""
    g = torch.Generator().manual_seed(0)
    rows = [torch.randperm(items, generator=g)[: n + 1] + 1 for _ in range(num)]
    for i, row in enumerate(rows):
        row[0] = i + 1
        row[1:] = torch.where(row[1:] <= num, row[1:] + num, row[1:]).clamp(max=items)
    data = torch.stack(rows)
    return data[:, :-1], data[:, 1:]


@pytest.mark.parametrize("backbone", ["sasrec", "hstu", "llama", "gpt"])
def test_overfits_a_few_sequences(backbone: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(
        backbone=backbone, dim=32, heads=2, layers=2, max_len=8, dropout=0.0, emb_dropout=0.0
    )
    model = build_model(cfg, 24).train()
    inputs, targets = _sequences()
    timestamps = torch.arange(8).repeat(6, 1) * 3600
    lengths = torch.full((6,), 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        logits = model.logits(model.encode(inputs, timestamps, lengths))
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    assert loss.item() < 0.02, f"{backbone} did not overfit: loss {loss.item():.3f}"
