"""Ranking metrics against hand-computed values and a brute-force reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recscale.eval.metrics import (
    MetricSums,
    hit_rate,
    mrr,
    ndcg,
    rank_metrics,
    ranks_from_scores,
)


def test_ranks_hand_computed():
    scores = torch.tensor([[0.1, 0.5, 0.3, 0.2], [0.9, 0.5, 0.3, 0.2], [0.0, 1.0, 2.0, 3.0]])
    assert ranks_from_scores(scores, 2).tolist() == [2, 3, 2]
    assert ranks_from_scores(scores, torch.tensor([0, 0, 3])).tolist() == [4, 1, 1]


def test_ties_are_pessimistic_and_nan_loses():
    scores = torch.ones(1, 5)
    assert ranks_from_scores(scores, 0).tolist() == [5]  # a collapsed model is the worst
    scores = torch.tensor([[float("nan"), 1.0, 2.0]])
    assert ranks_from_scores(scores, 0).tolist() == [3]
    scores = torch.tensor([[1.0, float("nan"), 0.0]])
    assert ranks_from_scores(scores, 0).tolist() == [2]


def test_masked_columns_do_not_count():
    scores = torch.tensor([[0.5, -math.inf, 0.1, -math.inf]])
    assert ranks_from_scores(scores, 0).tolist() == [1]


def test_hr_ndcg_mrr_by_hand():
    ranks = torch.tensor([1, 2, 3, 10, 11])
    assert hit_rate(ranks, 10).tolist() == [1, 1, 1, 1, 0]
    expected = [1.0, 1 / math.log2(3), 0.5, 1 / math.log2(11), 0.0]
    assert ndcg(ranks, 10).tolist() == pytest.approx(expected)
    assert mrr(ranks).tolist() == pytest.approx([1, 0.5, 1 / 3, 0.1, 1 / 11])
    # HSTU reading: a target outside the top 2,500 gets rank 2,501.
    assert mrr(torch.tensor([5000, 7]), cutoff=2500).tolist() == pytest.approx([1 / 2501, 1 / 7])


def _brute_rank(row: np.ndarray, target: int) -> int:
    t = row[target]
    return 1 + sum(1 for j, s in enumerate(row) if j != target and not s < t)


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.int64, st.tuples(st.integers(1, 6), st.integers(1, 12)), elements=st.integers(-3, 3)),
    st.data(),
)
def test_ranks_match_brute_force(scores, data):
    b, c = scores.shape
    targets = data.draw(st.lists(st.integers(0, c - 1), min_size=b, max_size=b))
    got = ranks_from_scores(torch.tensor(scores, dtype=torch.float32), torch.tensor(targets))
    want = [_brute_rank(scores[i], targets[i]) for i in range(b)]
    assert got.tolist() == want
    for k in (1, 5, 10):
        metrics = rank_metrics(got, ks=(k,))
        for i, r in enumerate(want):
            assert metrics[f"hr@{k}"][i] == (r <= k)
            assert metrics[f"ndcg@{k}"][i] == pytest.approx((r <= k) / math.log2(r + 1))
            assert metrics["mrr"][i] == pytest.approx(1 / r)


def test_metric_sums_merge_exactly():
    ranks = torch.tensor([1, 4, 9, 30, 2, 7, 200])
    whole = MetricSums()
    whole.add_ranks(ranks)
    whole.add("loss", torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]))
    a, b = MetricSums(), MetricSums()
    a.add_ranks(ranks[:2])
    a.add("loss", 3.0, count=2)
    b.add_ranks(ranks[2:])
    b.add("loss", torch.tensor([3.0, 4.0, 5.0, 6.0, 7.0]))
    merged = a.merge(b).to_dict()
    assert merged == pytest.approx(whole.to_dict())
    assert merged["loss"] == pytest.approx(4.0)
    assert merged["hr@10"] == pytest.approx(5 / 7)
    assert MetricSums.from_dict(whole.state()).to_dict() == whole.to_dict()


def test_declared_metric_with_no_users_is_nan():
    sums = MetricSums().declare(["hr@10"])
    assert math.isnan(sums.to_dict()["hr@10"])
    assert sums.all_reduce() is sums  # no process group: a no-op


def _reduce_worker(rank: int, world: int, init: str, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    sums = MetricSums().declare(["hr@1", "ndcg@1", "mrr"])
    if rank == 0:
        sums.add_ranks(torch.tensor([1, 2, 3]), ks=(1,))
    sums.all_reduce()
    if rank == 1:
        torch.save(sums.state(), out)
    dist.destroy_process_group()


@pytest.mark.slow
def test_all_reduce_across_two_processes(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "sums.pt"
    mp.spawn(_reduce_worker, args=(2, f"file://{tmp_path / 'store'}", str(out)), nprocs=2)
    state = torch.load(out)
    assert state["counts"]["hr@1"] == 3  # rank 1 had no users and still holds the total
    assert state["sums"]["mrr"] == pytest.approx(1 + 1 / 2 + 1 / 3)


def test_metric_names_are_exactly_what_rank_metrics_computes():
    from recscale.eval.metrics import metric_names, rank_metrics

    for ks in [(1,), (10, 5, 10), (1, 5, 10, 20, 50, 100, 200)]:
        assert metric_names(ks) == list(rank_metrics(torch.ones(3, dtype=torch.long), ks))
