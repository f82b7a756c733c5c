"""Ranking examples on real MovieLens data: no leakage, negatives never seen, the ratio."""

from __future__ import annotations

import numpy as np
import pytest

from recscale.data import load_dataset
from recscale.data.ranking import eval_examples, train_examples
from recscale.data.splits import leave_one_out


@pytest.fixture(scope="module")
def ml100k():
    ds = load_dataset("ml-100k")
    return ds, leave_one_out(ds)


def keys(users, items, width):
    return set((users.astype(np.int64) * width + items).tolist())


def test_no_test_or_valid_positive_is_ever_a_training_candidate(ml100k):
    ds, split = ml100k
    train = train_examples(ds, split, negative_ratio=1.0, seed=0)
    width = ds.num_items + 1
    seen_in_training = keys(train.users, train.candidates, width)
    for part in (split.valid, split.test):
        held = keys(part.users, part.targets, width)
        assert not held & seen_in_training
    # Every training history ends before its candidate's position: never a held-out item.
    for e in np.random.default_rng(0).choice(len(train), 300, replace=False):
        history = train.history(e)
        sequence = ds.sequence(int(train.users[e]))
        assert np.array_equal(history, sequence[: len(history)])
        if train.labels[e] == 1:
            assert train.candidates[e] == sequence[len(history)]


def test_negatives_are_items_the_user_never_touched_at_the_ratio(ml100k):
    ds, split = ml100k
    for ratio in (0.2, 0.5, 1.0, 2.0):
        ex = train_examples(ds, split, negative_ratio=ratio, seed=1)
        positives = int((ex.labels == 1).sum())
        negatives = ex.labels == 0
        assert negatives.sum() == pytest.approx(ratio * positives, rel=0.02)
        for u, item in zip(
            ex.users[negatives][:2000], ex.candidates[negatives][:2000], strict=True
        ):
            assert item not in set(ds.sequence(int(u)).tolist())


def test_eval_examples_are_the_held_out_positions_only(ml100k):
    ds, split = ml100k
    test = eval_examples(ds, split.test, negative_ratio=4, seed=0)
    positives = test.labels == 1
    assert positives.sum() == len(split.test)
    assert np.array_equal(test.candidates[positives], split.test.targets)
    assert (test.labels == 0).sum() == 4 * len(split.test)
    again = eval_examples(ds, split.test, negative_ratio=4, seed=0)
    assert np.array_equal(again.candidates, test.candidates)  # fixed by the seed


def test_like_labels_come_from_ratings(ml100k):
    ds, split = ml100k
    ex = eval_examples(ds, split.test, negative_ratio=0, seed=0, like_threshold=4)
    last = ds.offsets[split.test.users + 1] - 1
    assert np.array_equal(ex.labels, (ds.ratings[last] >= 4).astype(np.float32))
    assert 0.3 < ex.labels.mean() < 0.8  # both classes, as MovieLens has


def test_training_batches_hold_no_held_out_item_and_only_unseen_negatives(ml100k):
    from recscale.data.ranking import train_batches

    ds, split = ml100k
    width = ds.num_items + 1
    held = keys(split.test.users, split.test.targets, width) | keys(
        split.valid.users, split.valid.targets, width
    )
    rng = np.random.default_rng(0)
    positives = negatives = 0
    for batch in train_batches(ds, split, 30, 0.5, 64, rng):
        real = batch.candidates != 0
        u = np.broadcast_to(batch.users[:, None], real.shape)[real]
        assert not keys(u, batch.candidates[real], width) & held
        for user, item in zip(u, batch.candidates[real], strict=True):
            assert item not in set(ds.sequence(int(user)).tolist())
        assert (batch.prefix[real] >= 1).all() and (batch.prefix <= batch.lengths[:, None]).all()
        for row, user in enumerate(batch.users):
            train_seq = ds.sequence(int(user))[:-2]  # leave-one-out: last two are held out
            history = batch.items[row, : batch.lengths[row]]
            assert np.array_equal(history, train_seq[-30:])
        positives += int(batch.scored.sum())
        negatives += int(real.sum())
    assert negatives == pytest.approx(0.5 * positives, rel=0.03)


def test_eval_batches_group_each_users_candidates_after_the_whole_window(ml100k):
    from recscale.data.ranking import eval_batches

    ds, split = ml100k
    ex = eval_examples(ds, split.test, negative_ratio=3, seed=0)
    rows = 0
    for batch in eval_batches(ex, 20, 100):
        real = batch.candidates != 0
        assert (real.sum(1) == 4).all()  # the held-out item and its 3 negatives
        assert (batch.candidate_labels[real].reshape(-1, 4).sum(1) == 1).all()
        assert (batch.prefix[real].reshape(-1, 4) == batch.lengths[:, None]).all()
        assert (batch.lengths <= 20).all()
        rows += len(batch.users)
    assert rows == len(split.test)
