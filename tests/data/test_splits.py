"""Splits: exact contract shapes and, above all, no target leaking into training inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.data.splits import (
    cold_items,
    leave_one_out,
    leave_one_out_test_only,
    subsample_train,
    temporal_split,
)
from recscale.errors import RecscaleError

from .conftest import make_dataset

seq_lists = st.lists(st.lists(st.integers(1, 30), min_size=0, max_size=12), min_size=1, max_size=25)


def positions(ds, user):
    """Absolute positions (into ds.items) of one user's interactions."""
    return np.arange(ds.offsets[user], ds.offsets[user + 1])


def test_leave_one_out_contract(toy):
    sp = leave_one_out(toy)
    assert [sp.train.sequence(u).tolist() for u in range(4)] == [[1, 2], [5, 6], [7], [2, 4, 6]]
    assert sp.valid.users.tolist() == [0, 3] and sp.valid.targets.tolist() == [3, 8]
    assert [sp.valid.histories.sequence(k).tolist() for k in range(2)] == [[1, 2], [2, 4, 6]]
    assert sp.test.targets.tolist() == [4, 1]
    assert [sp.test.histories.sequence(k).tolist() for k in range(2)] == [[1, 2, 3], [2, 4, 6, 8]]
    assert sp.test.histories.timestamps.tolist() == [1, 2, 3, 1, 3, 5, 7]


def test_leave_one_out_test_only_contract(toy):
    sp = leave_one_out_test_only(toy)
    assert sp.valid is None
    assert [sp.train.sequence(u).tolist() for u in range(4)] == [[1, 2, 3], [5], [7], [2, 4, 6, 8]]
    assert sp.test.users.tolist() == [0, 1, 3] and sp.test.targets.tolist() == [4, 6, 1]


def _train_positions(ds, split):
    """Map each train interaction back to its absolute position in ds (prefix splits only)."""
    out = set()
    for u in range(ds.num_users):
        n = len(split.train.sequence(u))
        out.update(positions(ds, u)[:n].tolist())
    return out


def _check_no_leak(ds, split):
    train = _train_positions(ds, split)
    for ev, name in ((split.valid, "valid"), (split.test, "test")):
        if ev is None:
            continue
        for k, u in enumerate(ev.users):
            hist_len = len(ev.histories.sequence(k))
            target_pos = ds.offsets[u] + hist_len
            assert ds.items[target_pos] == ev.targets[k]
            assert target_pos not in train, f"{name} target of user {u} is in train"
            # The history is exactly what precedes the target: never the target itself.
            assert np.array_equal(ev.histories.sequence(k), ds.items[ds.offsets[u] : target_pos])


@settings(max_examples=60, deadline=None)
@given(seqs=seq_lists)
def test_no_leak_leave_one_out(seqs):
    ds = make_dataset([*seqs, [1]])
    for split in (leave_one_out(ds), leave_one_out_test_only(ds)):
        _check_no_leak(ds, split)
        assert split.train.num_users == ds.num_users
    sp = leave_one_out(ds)
    # valid positions are also not in the test... they are in test history, which is allowed;
    # but the valid target must not be in train.
    assert len(sp.valid) == len(sp.test) == int((ds.lengths >= 3).sum())


@settings(max_examples=60, deadline=None)
@given(seqs=seq_lists, q=st.floats(0.05, 0.95))
def test_no_leak_temporal(seqs, q):
    rng = np.random.default_rng(len(seqs))
    times = [sorted(rng.integers(0, 50, size=len(s)).tolist()) for s in seqs]
    ds = make_dataset([*seqs, [1]], [*times, [0]])
    sp = temporal_split(ds, q)
    cut = np.quantile(ds.timestamps, q, method="lower")
    assert sp.train.timestamps is not None and (sp.train.timestamps < cut).all()
    _check_no_leak(ds, sp)
    for k, u in enumerate(sp.test.users):
        n = len(sp.test.histories.sequence(k))
        assert ds.timestamps[ds.offsets[u] + n] >= cut
        assert (sp.test.histories.user_timestamps(k) < cut).all()


def test_temporal_needs_timestamps():
    with pytest.raises(RecscaleError, match="has no timestamps"):
        temporal_split(make_dataset([[1, 2]]), 0.5)
    with pytest.raises(RecscaleError, match=r"quantile must be in \(0, 1\)"):
        temporal_split(make_dataset([[1, 2]], [[1, 2]]), 1.5)


@settings(max_examples=40, deadline=None)
@given(seqs=seq_lists, fraction=st.floats(0.01, 1.0), seed=st.integers(0, 5))
def test_subsample(seqs, fraction, seed):
    ds = make_dataset([*seqs, [1, 2, 3]])
    sp = leave_one_out(ds)
    for by in ("users", "interactions"):
        a = subsample_train(sp, fraction, by=by, seed=seed)
        b = subsample_train(sp, fraction, by=by, seed=seed)
        assert np.array_equal(a.train.items, b.train.items)
        assert a.test is sp.test and a.valid is sp.valid and a.train.num_users == ds.num_users
        # Each kept sequence is a suffix of the original training sequence.
        for u in range(ds.num_users):
            kept, full = a.train.sequence(u), sp.train.sequence(u)
            assert np.array_equal(kept, full[len(full) - len(kept) :])
        nonempty = int((sp.train.lengths > 0).sum())
        if by == "users":
            assert int((a.train.lengths > 0).sum()) == round(fraction * nonempty)
        else:
            assert a.train.num_interactions == round(fraction * sp.train.num_interactions)


def test_subsample_errors(toy):
    with pytest.raises(RecscaleError, match="fraction must be in"):
        subsample_train(leave_one_out(toy), 0.0)
    with pytest.raises(RecscaleError, match="by must be"):
        subsample_train(leave_one_out(toy), 0.5, by="items")


@pytest.mark.integration
def test_real_ml1m_sasrec_leave_one_out():
    from recscale.data.store import load_dataset

    ds = load_dataset("ml-1m-sasrec")
    sp = leave_one_out(ds)
    assert len(sp.test) == 6_040 and sp.train.num_interactions == 999_611 - 2 * 6_040
    last = ds.offsets[1:] - 1
    assert np.array_equal(sp.test.targets, ds.items[last])
    assert np.array_equal(sp.valid.targets, ds.items[last - 1])
    # No train sequence reaches a valid or test position.
    assert (sp.train.lengths == ds.lengths - 2).all()


@settings(max_examples=60, deadline=None)
@given(seqs=seq_lists, fraction=st.floats(0.05, 0.9), seed=st.integers(0, 3))
def test_cold_items_are_never_trained_on(seqs, fraction, seed):
    ds = make_dataset([*seqs, [1]])
    sp = cold_items(ds, fraction, seed)
    assert sp.name == "cold_items"
    again = cold_items(ds, fraction, seed)
    assert np.array_equal(sp.test.targets, again.test.targets)
    # The cold set: items of the catalogue that no kept interaction but a last one shows.
    rng = np.random.default_rng(seed)
    count = max(1, round(fraction * ds.num_items))
    cold = 1 + rng.choice(ds.num_items, count, replace=False)
    assert not np.isin(sp.train.items, cold).any()
    assert sp.valid is not None and not np.isin(sp.valid.targets, cold).any()
    assert not np.isin(sp.test.histories.items, cold).any()
    # Every user whose last interaction is cold (and who keeps 3 items) is tested on it.
    for u in range(ds.num_users):
        seq = ds.sequence(u)
        if len(seq) and seq[-1] in cold:
            kept = [i for i in seq[:-1] if i not in cold]
            if len(kept) >= 2:
                row = int(np.flatnonzero(sp.test.users == u)[0])
                assert sp.test.targets[row] == seq[-1]


@pytest.mark.integration
def test_real_ml1m_cold_items_leave_enough_cold_targets():
    from recscale.data import load_dataset

    ds = load_dataset("ml-1m-sasrec")
    sp = cold_items(ds, 0.1)
    train_items = np.unique(sp.train.items)
    cold_targets = ~np.isin(sp.test.targets, train_items)
    # ~10% of the items, weighted by how often they end a sequence: hundreds of test users.
    assert cold_targets.sum() >= 200
    assert len(np.unique(sp.test.targets[cold_targets])) >= 50
