"""What a run can only check once its data is loaded, before the first step: that the
split leaves something to train on and to evaluate, and that a sampled protocol can draw
negatives for every evaluated user (else evaluation would fail after an epoch)."""

from __future__ import annotations

import numpy as np

from recscale.data.dataset import SequenceDataset
from recscale.data.splits import EvalSet, Split
from recscale.errors import RecscaleError
from recscale.eval.protocols import Protocol


def check_split(split: Split, dataset: SequenceDataset, protocol: Protocol) -> None:
    """A user error naming the data and the split when the run could not train or score."""
    where = f"dataset {dataset.name!r}, split {split.name!r}"
    if not (split.train.lengths >= 2).any():
        raise RecscaleError(
            f"{where}: no training sequence has 2 or more interactions, nothing to train on "
            "(a next-item model needs users with at least 3 interactions under leave_one_out)"
        )
    parts = [("test", split.test)] + ([("valid", split.valid)] if split.valid else [])
    for part, eval_set in parts:
        if len(eval_set) == 0:
            raise RecscaleError(f"{where}: the {part} set is empty, no user can be evaluated")
        if protocol.kind == "sampled":
            _check_negatives(eval_set, dataset.num_items, f"{where}, {part} set", protocol)


def _check_negatives(eval_set: EvalSet, num_items: int, where: str, protocol: Protocol) -> None:
    """Every user must leave one item outside history and target to draw negatives from."""
    histories = eval_set.histories
    # Only a user with at least num_items - 1 history items can have seen every other item.
    for row in np.flatnonzero(histories.lengths + 1 >= num_items):
        start, end = histories.offsets[row], histories.offsets[row + 1]
        seen = np.union1d(histories.items[start:end], eval_set.targets[row : row + 1])
        if len(seen) >= num_items:
            raise RecscaleError(
                f"{where}: user {int(eval_set.users[row])} has interacted with all "
                f"{num_items} items, so {protocol.name} has no negatives to draw "
                "(use eval.protocol: full)"
            )
