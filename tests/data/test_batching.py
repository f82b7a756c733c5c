"""Batches: contract windows, padding to the batch's longest, determinism, exact sharding."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recscale.data.batching import (
    eval_batches,
    pack_rows,
    replace_inputs,
    to_device,
    train_batches,
)
from recscale.data.splits import leave_one_out

from .conftest import make_dataset


def reference_window(seq, max_len):
    window = seq[-(max_len + 1) :]
    return window[:-1], window[1:]


def check_train(ds, max_len, batch_size, seed=0, epoch=0, world_size=1, bucket_batches=None):
    seen = []
    counts = []
    for rank in range(world_size):
        batches = list(
            train_batches(ds, max_len, batch_size, seed, epoch, rank, world_size, bucket_batches)
        )
        counts.append(len(batches))
        for b in batches:
            assert b.items.dtype == torch.long and b.items.shape == b.targets.shape
            assert b.items.shape[0] <= batch_size
            if len(b.lengths):
                assert b.items.shape[1] == max(int(b.lengths.max()), 1)  # padded to the longest
            for row in range(len(b.lengths)):
                n = int(b.lengths[row])
                items, targets = b.items[row, :n].numpy(), b.targets[row, :n].numpy()
                # Timestamps encode the user (see ``timed``).
                user = int(b.timestamps[row, 0]) // 1000
                ref_i, ref_t = reference_window(ds.sequence(user), max_len)
                assert np.array_equal(items, ref_i) and np.array_equal(targets, ref_t)
                assert (b.items[row, n:] == 0).all() and (b.targets[row, n:] == 0).all()
                seen.append(user)
    return seen, counts


def timed(seqs):
    # Timestamps encode the user (1000 * u + position) so tests can find rows' users.
    return make_dataset(seqs, [[1000 * u + k for k in range(len(s))] for u, s in enumerate(seqs)])


# Users of 0-15 items over 9 item ids, cut into small batches over 1-3 ranks.
BATCHING = {
    "seqs": st.lists(st.lists(st.integers(1, 9), min_size=0, max_size=15), min_size=1, max_size=30),
    "max_len": st.integers(1, 6),
    "batch_size": st.integers(1, 7),
    "world_size": st.integers(1, 3),
}


@settings(max_examples=80, deadline=None)
@given(**BATCHING, bucket_batches=st.none() | st.integers(1, 4))  # None: plain shuffle
def test_train_batches_partition_users_exactly(
    seqs, max_len, batch_size, world_size, bucket_batches
):
    ds = timed(seqs)
    seen, counts = check_train(
        ds, max_len, batch_size, world_size=world_size, bucket_batches=bucket_batches
    )
    assert sorted(seen) == np.flatnonzero(ds.lengths >= 2).tolist()
    assert len(set(counts)) == 1  # every rank takes the same number of steps


@settings(max_examples=80, deadline=None)
@given(**BATCHING)
def test_packed_batches_hold_the_same_users_each_in_its_own_segment(
    seqs, max_len, batch_size, world_size
):
    ds = timed(seqs)
    for rank in range(world_size):
        plain = train_batches(ds, max_len, batch_size, 0, 0, rank, world_size)
        packed = train_batches(ds, max_len, batch_size, 0, 0, rank, world_size, pack=True)
        for p, b in zip(plain, packed, strict=True):
            assert b.items.shape[1] <= max_len and b.items.shape[0] <= p.items.shape[0]
            assert b.lengths.tolist() == (b.segments > 0).sum(1).tolist()
            users = []
            for row in range(b.items.shape[0]):
                segs = b.segments[row]
                used = int(b.lengths[row])
                assert (segs[:used] > 0).all() and (segs[used:] == 0).all()  # padding at the end
                assert (b.items[row, used:] == 0).all() and (b.targets[row, used:] == 0).all()
                for s in range(1, int(segs.max()) + 1):
                    where = segs == s
                    cols = torch.nonzero(where).flatten()
                    assert (cols == torch.arange(cols[0], cols[0] + len(cols))).all()
                    assert b.positions[row, where].tolist() == list(range(len(cols)))
                    user = int(b.timestamps[row, cols[0]]) // 1000
                    ref_i, ref_t = reference_window(ds.sequence(user), max_len)
                    assert b.items[row, where].tolist() == ref_i.tolist()
                    assert b.targets[row, where].tolist() == ref_t.tolist()
                    users.append(user)
            assert sorted(users) == sorted(int(t) // 1000 for t in p.timestamps[:, 0])


@given(lengths=st.lists(st.integers(1, 20), max_size=40), capacity=st.integers(20, 30))
def test_pack_rows_fills_rows_without_overlap(lengths, capacity):
    lengths = np.array(lengths, dtype=np.int64)
    place = pack_rows(lengths, capacity)
    rows, width = place.shape
    assert width <= capacity and rows <= len(lengths)
    taken = np.zeros((max(rows, 1), capacity), dtype=int)
    for r, c, n in zip(place.row, place.column, lengths, strict=True):
        taken[r, c : c + n] += 1
    assert taken.max(initial=0) <= 1 and taken.sum() == lengths.sum()
    # First fit: no two rows could have been merged into one.
    fill = taken.sum(1)[:rows]
    if rows > 1:
        assert np.sort(fill)[0] + np.sort(fill)[1] > capacity


def test_packed_batches_pad_little_on_short_users():
    rng = np.random.default_rng(0)
    seqs = [list(rng.integers(1, 50, size=int(n))) for n in rng.geometric(0.08, 2000) + 1]
    ds = make_dataset(seqs)
    plain = list(train_batches(ds, 50, 128, seed=1, epoch=0))
    packed = list(train_batches(ds, 50, 128, seed=1, epoch=0, pack=True))
    assert padding_share(packed) < 0.05 < 0.5 < padding_share(plain)


def padding_share(batches) -> float:
    real = cells = 0
    for b in batches:
        real, cells = real + int(b.lengths.sum()), cells + b.items.numel()
    return 1 - real / cells


def test_length_bucketed_batches_pad_less_and_keep_the_epoch_order_fixed():
    rng = np.random.default_rng(0)
    # Lengths spread from 2 to 60, as on the Amazon files (most short, a few long).
    seqs = [list(rng.integers(1, 50, size=int(n))) for n in rng.geometric(0.08, 2000) + 1]
    ds = make_dataset(seqs)
    plain = list(train_batches(ds, 50, 32, seed=1, epoch=0))
    bucketed = list(train_batches(ds, 50, 32, seed=1, epoch=0, bucket_batches=20))
    assert padding_share(bucketed) < padding_share(plain) / 3
    again = list(train_batches(ds, 50, 32, seed=1, epoch=0, bucket_batches=20))
    assert all(torch.equal(a.items, b.items) for a, b in zip(bucketed, again, strict=True))
    other = list(train_batches(ds, 50, 32, seed=1, epoch=1, bucket_batches=20))
    assert not all(
        a.items.shape == b.items.shape and torch.equal(a.items, b.items)
        for a, b in zip(bucketed, other, strict=True)
    )


def test_deterministic_per_seed_and_epoch():
    ds = timed([[1, 2, 3]] * 50)

    def order(seed, epoch):
        return [
            int(t) // 1000 for b in train_batches(ds, 5, 8, seed, epoch) for t in b.timestamps[:, 0]
        ]

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1) and order(1, 0) != order(2, 0)


def test_eval_batches_windows_and_rows():
    ds = make_dataset([[1, 2, 3, 4, 5, 6], [7, 8, 9], [1, 3]])
    split = leave_one_out(ds)
    batches = list(eval_batches(split.test, max_len=3, batch_size=1))
    assert [b.rows.tolist() for b in batches] == [[0], [1]]
    assert batches[0].items.tolist() == [[3, 4, 5]] and batches[0].targets.tolist() == [6]
    assert batches[1].items.tolist() == [[7, 8]] and batches[1].lengths.tolist() == [2]
    assert batches[0].timestamps is None
    both = list(eval_batches(split.test, max_len=10, batch_size=8))
    assert both[0].items.tolist() == [[1, 2, 3, 4, 5], [7, 8, 0, 0, 0]]
    sharded = [b.rows.tolist() for r in range(2) for b in eval_batches(split.test, 10, 8, r, 2)]
    assert sorted(r for rows in sharded for r in rows) == [0, 1]


def test_eval_batches_by_length_cover_every_row_longest_first():
    rng = np.random.default_rng(3)
    ds = make_dataset([list(rng.integers(1, 20, size=int(n))) for n in rng.integers(2, 40, 97)])
    test = leave_one_out(ds).test
    for world in (1, 3):
        rows = []
        for rank in range(world):
            for b in eval_batches(test, 25, 8, rank, world, by_length=True):
                rows += b.rows.tolist()
                n = np.minimum(test.histories.lengths[b.rows.numpy()], 25)
                assert b.lengths.tolist() == n.tolist()
        assert sorted(rows) == list(range(len(test)))
    one_rank = [b.items.shape[1] for b in eval_batches(test, 25, 8, by_length=True)]
    assert one_rank == sorted(one_rank, reverse=True)


def test_to_device_keeps_fields():
    ds = timed([[1, 2, 3], [4, 5]])
    batch = next(train_batches(ds, 5, 4, 0, 0))
    moved = to_device(batch, "cpu")
    assert torch.equal(moved.items, batch.items) and torch.equal(moved.timestamps, batch.timestamps)
    split = leave_one_out(make_dataset([[1, 2, 3]]))
    eb = to_device(next(eval_batches(split.test, 5, 4)), torch.device("cpu"))
    assert eb.timestamps is None and eb.targets.tolist() == [3]


def test_accumulation_and_ranks_compose():
    ds = timed([[1, 2, 3]] * 37)

    def users(batch_size, rank=0, world_size=1):
        return [
            [int(t) // 1000 for t in b.timestamps[:, 0]]
            for b in train_batches(ds, 5, batch_size, 3, 1, rank, world_size)
        ]

    big, small = users(8), users(4)
    assert [a + b for a, b in zip(small[::2], small[1::2], strict=False)] == big[: len(small) // 2]
    r0, r1 = users(4, 0, 2), users(4, 1, 2)
    assert len(r0) == len(r1) == len(big)
    assert [sorted(a + b) for a, b in zip(r0, r1, strict=True)] == [sorted(x) for x in big]


def test_training_noise_replaces_inputs_at_the_rate_and_keeps_targets():
    rng = np.random.default_rng(0)
    ds = make_dataset([list(rng.integers(1, 500, size=60)) for _ in range(50)])
    batch = next(train_batches(ds, max_len=50, batch_size=50, seed=0, epoch=0))
    noisy = replace_inputs(batch, 0.3, 500, torch.Generator().manual_seed(1))
    again = replace_inputs(batch, 0.3, 500, torch.Generator().manual_seed(1))
    assert torch.equal(noisy.items, again.items)
    assert torch.equal(noisy.targets, batch.targets)
    real = batch.items != 0
    assert torch.equal(noisy.items != 0, real)  # padding stays padding
    changed = (noisy.items != batch.items)[real].float().mean().item()
    assert 0.25 < changed < 0.35  # about rate * (1 - 1/500)
    assert replace_inputs(batch, 0.0, 500) is batch
