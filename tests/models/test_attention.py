"""The shared position table and its ids (models/attention.py)."""

from __future__ import annotations

import pytest
import torch

from recscale.models.attention import AbsolutePositions, packed_attend, position_ids


def test_inverse_positions_count_back_from_the_most_recent_item() -> None:
    positions = AbsolutePositions(max_len=6, dim=4, dropout=0.0, std=None)
    table = positions.table.weight
    x = torch.zeros(2, 4, 4)
    lengths = torch.tensor([3, 1])
    with torch.no_grad():
        out = positions(x, position_ids(True, lengths, 4, None))
    torch.testing.assert_close(out[0, :3], table[[2, 1, 0]])
    torch.testing.assert_close(out[1, 0], table[0])
    with torch.no_grad():
        absolute = positions(x, position_ids(False, lengths, 4, None))
        torch.testing.assert_close(absolute[1], table[:4])
    with pytest.raises(ValueError, match="max_len"):
        positions(torch.zeros(1, 7, 4), position_ids(True, torch.tensor([7]), 7, None))


def test_inverse_positions_in_a_packed_row_count_back_within_each_user() -> None:
    positions = AbsolutePositions(max_len=6, dim=4, dropout=0.0, std=None)
    table = positions.table.weight
    # one row: a user of 3 items, one of 2, then padding
    attend = packed_attend(torch.tensor([[1, 1, 1, 2, 2, 0]]), torch.tensor([[0, 1, 2, 0, 1, 0]]))
    with torch.no_grad():
        out = positions(torch.zeros(1, 6, 4), position_ids(True, torch.tensor([5]), 6, attend))
    torch.testing.assert_close(out[0, :5], table[[2, 1, 0, 1, 0]])


def test_learned_positions_init_truncated_normal_when_given_a_std() -> None:
    torch.manual_seed(0)
    positions = AbsolutePositions(max_len=400, dim=64, dropout=0.0, std=0.1)
    table = positions.table.weight.detach()
    assert float(table.abs().max()) <= 0.2
    assert 0.07 < float(table.std()) < 0.1  # a ±2-std truncation narrows the spread
