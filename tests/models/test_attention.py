"""The shared position tables (models/attention.py)."""

from __future__ import annotations

import pytest
import torch

from recscale.models.attention import LearnedPositions, packed_attend


def test_inverse_positions_count_back_from_the_most_recent_item() -> None:
    positions = LearnedPositions(max_len=6, dim=4, dropout=0.0, inverse=True)
    table = positions.table.weight
    x = torch.zeros(2, 4, 4)
    with torch.no_grad():
        out = positions(x, torch.tensor([3, 1]))
    torch.testing.assert_close(out[0, :3], table[[2, 1, 0]])
    torch.testing.assert_close(out[1, 0], table[0])
    absolute = LearnedPositions(max_len=6, dim=4, dropout=0.0, inverse=False)
    with torch.no_grad():
        torch.testing.assert_close(absolute(x, torch.tensor([3, 1]))[1], absolute.table.weight[:4])
    with pytest.raises(ValueError, match="max_len"):
        positions(torch.zeros(1, 7, 4), torch.tensor([7]))


def test_inverse_positions_in_a_packed_row_count_back_within_each_user() -> None:
    positions = LearnedPositions(max_len=6, dim=4, dropout=0.0, inverse=True)
    table = positions.table.weight
    # one row: a user of 3 items, one of 2, then padding
    attend = packed_attend(torch.tensor([[1, 1, 1, 2, 2, 0]]), torch.tensor([[0, 1, 2, 0, 1, 0]]))
    with torch.no_grad():
        out = positions(torch.zeros(1, 6, 4), torch.tensor([5]), attend)
    torch.testing.assert_close(out[0, :5], table[[2, 1, 0, 1, 0]])


def test_learned_positions_init_truncated_normal_when_given_a_std() -> None:
    torch.manual_seed(0)
    positions = LearnedPositions(max_len=400, dim=64, dropout=0.0, inverse=True, std=0.1)
    table = positions.table.weight.detach()
    assert float(table.abs().max()) <= 0.2
    assert 0.07 < float(table.std()) < 0.1  # a ±2-std truncation narrows the spread
