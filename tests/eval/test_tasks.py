"""Challenge tasks: each is exact at its neutral setting and right on known answers."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch

from recscale.data.splits import Split
from recscale.errors import RecscaleError
from recscale.eval.derived import corrupt, horizon_view, popularity_groups, truncate, unseen_tail
from recscale.eval.evaluator import evaluate, top_items
from recscale.eval.protocols import parse_protocol
from recscale.eval.tasks import TASKS, TaskContext, parse_options, summarise
from tests.eval.test_evaluator import make_eval_set, random_eval_set
from tests.fakes import LastItemModel

KS = (1, 5, 10)


def context(model, test, train=None, protocol="full") -> TaskContext:
    train = train if train is not None else test.histories
    return TaskContext(
        model=model,
        split=Split(train=train, valid=None, test=test, name="toy"),
        protocol=parse_protocol(protocol),
        max_len=8,
        device=torch.device("cpu"),
        ks=KS,
        batch_size=7,
    )


def untrained(eval_set):
    """A training set with an empty sequence for every user (nothing was a training target)."""
    from dataclasses import replace

    h = eval_set.histories
    n = int(eval_set.users.max()) + 1
    return replace(
        h,
        offsets=np.zeros(n + 1, dtype=np.int64),
        items=np.zeros(0, dtype=np.int64),
        user_ids=np.array([str(u) for u in range(n)]),
        timestamps=None,
        ratings=None,
    )


def plain(ctx: TaskContext, eval_set) -> dict[str, float]:
    sums = evaluate(
        ctx.model, eval_set, ctx.protocol, max_len=ctx.max_len, ks=KS, compute_loss=False
    )
    return sums.to_dict()


def same_metrics(a: dict, b: dict) -> None:
    for name, value in b.items():
        assert a[name] == pytest.approx(value, abs=1e-12), name


class HistoryBlindModel(LastItemModel):
    """Scores items the same whatever the history: the query is a fixed vector."""

    def encode(self, items, timestamps=None, lengths=None):
        return torch.ones(*items.shape, self.emb.weight.shape[1]) + 0 * self.proj(self.emb(items))


@pytest.fixture
def toy():
    return random_eval_set(num_users=40, num_items=25, seed=3)


def test_noise_rate_zero_reproduces_plain_metrics(toy):
    ctx = context(LastItemModel(25, 6), toy)
    result = TASKS.get("noise").run(ctx, parse_options("noise", ["rates=0,0.5"]))
    for mode in ("replace", "delete"):
        same_metrics(result[mode]["0.0"], plain(ctx, toy))
    assert result["replace"]["0.5"]["hr@10"] != result["replace"]["0.0"]["hr@10"]


def test_corrupt_is_seeded_and_keeps_one_item():
    es = random_eval_set(num_users=30, num_items=50, seed=1)
    a, b = corrupt(es, 0.5, "replace", 7), corrupt(es, 0.5, "replace", 7)
    assert np.array_equal(a.histories.items, b.histories.items)
    changed = (a.histories.items != es.histories.items).mean()
    assert 0.3 < changed < 0.6  # about rate * (1 - 1/num_items)
    gone = corrupt(es, 1.0, "delete", 0)
    assert np.array_equal(gone.histories.lengths, np.ones(30))
    last = [es.histories.sequence(i)[-1] for i in range(30)]
    assert np.array_equal(gone.histories.items, last)
    with pytest.raises(RecscaleError, match="allowed: replace, delete"):
        corrupt(es, 0.1, "shuffle", 0)


def test_rewritten_histories_keep_timestamps_and_ratings_aligned():
    from dataclasses import replace

    es = random_eval_set(num_users=20, num_items=30, seed=2)
    h = es.histories
    # Encode each interaction's position in its timestamp and rating, to follow it.
    position = np.arange(h.num_interactions)
    h = replace(h, timestamps=position.astype(np.int64), ratings=position.astype(np.float32))
    es = type(es)(h, es.targets, es.users)
    for view in (corrupt(es, 0.5, "delete", 3), truncate(es, 2), horizon_view(es, 2, 1)[0]):
        v = view.histories
        assert np.array_equal(v.timestamps, v.ratings.astype(np.int64))
        # Every kept interaction still carries its own item: same item at that position.
        assert np.array_equal(h.items[v.timestamps], v.items)
    replaced = corrupt(es, 0.5, "replace", 3).histories
    assert np.array_equal(replaced.ratings, h.ratings)


def test_history_blind_model_scores_the_same_at_every_cold_start_cut(toy):
    ctx = context(HistoryBlindModel(25, 6), toy, protocol="full-no-exclude")
    result = TASKS.get("cold-start").run(ctx, parse_options("cold-start", None))
    reference = result["visible"]["all"]
    for k in ("1", "3", "5", "10"):
        same_metrics(result["visible"][k], reference)


def test_cold_start_cut_beyond_every_history_changes_nothing(toy):
    ctx = context(LastItemModel(25, 6), toy)
    longest = int(toy.histories.lengths.max())
    same_metrics(ctx.metrics(truncate(toy, longest)), ctx.metrics(toy))
    result = TASKS.get("cold-start").run(ctx, parse_options("cold-start", ["short=4"]))
    groups = result["history_length"]
    assert groups["<=4"]["users"] + groups[">4"]["users"] == len(toy)
    assert np.all(truncate(toy, 2).histories.lengths <= 2)


def test_multi_step_horizon_one_is_the_plain_next_item_task(toy):
    ctx = context(LastItemModel(25, 6), toy, train=untrained(toy))
    result = TASKS.get("multi-step").run(ctx, parse_options("multi-step", ["horizons=1"]))
    reference = plain(ctx, toy)
    same_metrics(result["set"]["1"], reference)
    same_metrics(
        {k: v for k, v in result["autoregressive"]["1"].items() if k != "per_step"}, reference
    )


def test_multi_step_views_hold_out_the_last_items_in_order():
    es = make_eval_set([[1, 2, 3, 4], [5, 6], [7]], [9, 10, 11], num_items=12)
    view, targets = horizon_view(es, 3, min_input=1)
    assert targets.tolist() == [[3, 4, 9]]  # users with too short a history are left out
    assert view.histories.sequence(0).tolist() == [1, 2]
    assert view.targets.tolist() == [3] and view.users.tolist() == [100]


def test_multi_step_set_recall_counts_future_items_in_one_top_k():
    rng = np.random.default_rng(5)
    # Distinct items per user, so no future item is also a history item.
    seqs = [rng.permutation(np.arange(1, 31))[: rng.integers(4, 12)].tolist() for _ in range(20)]
    es = make_eval_set([s[:-1] for s in seqs], [s[-1] for s in seqs], num_items=30)
    model = LastItemModel(30, 4)
    ctx = context(model, es, train=untrained(es))
    result = TASKS.get("multi-step").run(ctx, {"horizons": (3,), "allow_seen": False})
    assert not result["seen_targets"]
    view, targets = horizon_view(es, 3, min_input=1)
    top = top_items(model, view, max_len=8, k=5)
    recall = np.mean([len(set(t) & set(p)) / 3 for t, p in zip(targets, top, strict=True)])
    assert result["set"]["3"]["hr@5"] == pytest.approx(recall)
    assert result["set"]["3"]["users"] == 3 * len(view)
    assert set(result["autoregressive"]["3"]["per_step"]) == {"1", "2", "3"}


def test_multi_step_refuses_horizons_that_reach_training_targets():
    from recscale.data.splits import leave_one_out, leave_one_out_test_only
    from tests.data.conftest import make_dataset

    ds = make_dataset([list(range(1, 9)), list(range(3, 12)), [2, 4, 6, 8, 10]])
    split = leave_one_out(ds)
    assert unseen_tail(split) == 2  # the valid and the test item
    assert unseen_tail(leave_one_out_test_only(ds)) == 1
    ctx = TaskContext(
        model=LastItemModel(11, 4),
        split=split,
        protocol=parse_protocol("full"),
        max_len=8,
        device=torch.device("cpu"),
        ks=KS,
    )
    ok = TASKS.get("multi-step").run(ctx, parse_options("multi-step", None))
    assert set(ok["set"]) == {"1", "2"} and not ok["seen_targets"]
    with pytest.raises(RecscaleError, match="only the last 2 item"):
        TASKS.get("multi-step").run(ctx, parse_options("multi-step", ["horizons=1,3"]))


def test_top_items_match_a_full_argsort_without_history():
    es = random_eval_set(num_users=17, num_items=40, seed=2)
    model = LastItemModel(40, 5, seed=4)
    got = top_items(model, es, max_len=8, k=4, batch_size=5, item_chunk=7)
    with torch.no_grad():
        for row in range(len(es)):
            seq = es.histories.sequence(row)
            q = model.emb.weight[int(seq[-1])]
            scores = model.emb.weight @ q
            scores[0] = -torch.inf
            scores[torch.as_tensor(seq)] = -torch.inf
            assert got[row].tolist() == torch.topk(scores, 4).indices.tolist()


def test_popularity_groups_cut_items_by_training_count():
    counts = np.array([0, 5, 1, 9, 0, 3, 7, 2, 2, 4, 6])  # 10 items
    groups = popularity_groups(counts, [0.2, 0.5])
    assert groups[0] == 0
    assert sorted(np.flatnonzero(groups == 1)) == [3, 6]  # the two most popular
    assert sorted(np.flatnonzero(groups == 2)) == [1, 9, 10]
    assert (groups == 3).sum() == 5


def test_long_tail_groups_partition_the_test_users(toy):
    ctx = context(LastItemModel(25, 6), toy)
    result = TASKS.get("long-tail").run(ctx, parse_options("long-tail", ["bounds=0.2,0.6"]))
    groups = result
    assert [name.split()[0] for name in groups] == ["G1", "G2", "G3"]
    assert "G2 (items 20%-60% by popularity)" in groups
    users = sum(g["users"] for g in groups.values())
    assert users == len(toy)
    overall = sum(g["users"] * g.get("hr@10", 0.0) for g in groups.values()) / users
    assert overall == pytest.approx(plain(ctx, toy)["hr@10"])
    assert sum(g["items"] for g in groups.values()) == 25


def test_cross_domain_needs_domains_and_splits_by_target_domain(toy):
    ctx = context(LastItemModel(25, 6), toy)
    with pytest.raises(RecscaleError, match="item domains"):
        TASKS.get("cross-domain").run(ctx, {})
    from dataclasses import replace

    domains = np.array([0] + [1] * 12 + [2] * 13)
    hist = replace(toy.histories, item_domains=domains, domain_names=("beauty", "toys"))
    es = type(toy)(hist, toy.targets, toy.users)
    result = TASKS.get("cross-domain").run(context(LastItemModel(25, 6), es), {})["domains"]
    assert set(result) == {"beauty", "toys"}
    assert result["beauty"]["users"] == int((toy.targets <= 12).sum())


def test_options_are_typed_and_unknown_keys_name_the_allowed():
    assert parse_options("noise", ["rates=0,0.25", "modes=delete"])["rates"] == (0.0, 0.25)
    assert parse_options("cold-start", {"short": 3})["short"] == 3
    with pytest.raises(RecscaleError, match="allowed: lengths, short"):
        parse_options("cold-start", ["depth=3"])
    with pytest.raises(RecscaleError, match="key=value"):
        parse_options("noise", ["rates"])
    with pytest.raises(RecscaleError, match="unknown task 'nope'"):
        parse_options("nope", None)


def test_summarise_counts_users_and_averages():
    out = summarise(np.array([1, 3, 20]), (1, 5))
    assert out["users"] == 3 and out["hr@5"] == pytest.approx(2 / 3)
    assert summarise(np.zeros(0, dtype=np.int64)) == {"users": 0}


def test_user_can_register_a_task():
    name = "test-only-first-user"

    @TASKS.register(name)
    class _:  # any object with run, defaults and description works
        defaults: ClassVar[dict] = {}
        description = "rank of the first test user"

        @staticmethod
        def run(ctx, options):
            return {"rank": int(ctx.ranks(ctx.split.test)[0])}

    toy = random_eval_set(num_users=5, num_items=10, seed=0)
    assert TASKS.get(name).run(context(LastItemModel(10, 3), toy), {})["rank"] >= 1


def test_training_targets_are_items_after_the_first_position():
    from recscale.eval.tasks import training_targets
    from tests.data.conftest import make_dataset

    seen = training_targets(make_dataset([[1, 2, 3], [4, 2], [5], [], [6, 6]]))
    assert np.flatnonzero(seen).tolist() == [2, 3, 6]


def test_cold_items_scores_never_trained_targets_apart(toy):
    from tests.data.conftest import make_dataset

    cold_set = np.unique(toy.targets[:6])
    warm = [i for i in range(1, 26) if i not in cold_set]
    # One training user sees every warm item as a target, none of the cold ones.
    train = make_dataset([[warm[0], *warm], [25]] if 25 in cold_set else [[warm[0], *warm]])
    ctx = context(LastItemModel(25, 6), toy, train=train)
    result = TASKS.get("cold-items").run(ctx, {})
    cold = np.isin(toy.targets, cold_set)
    assert result["cold"]["users"] == int(cold.sum()) and result["cold"]["items"] == len(cold_set)
    assert result["warm"]["users"] == len(toy) - int(cold.sum())
    assert result["never_trained_items"] == len(cold_set)
    same_metrics(result["all"], plain(ctx, toy))
    ranks = ctx.ranks(toy)
    same_metrics(result["cold"], summarise(ranks[cold], KS))


def test_cold_items_without_cold_targets_reports_the_warm_group_alone(toy):
    from tests.data.conftest import make_dataset

    ctx = context(LastItemModel(25, 6), toy, train=make_dataset([list(range(1, 26)) * 2]))
    result = TASKS.get("cold-items").run(ctx, {})
    assert "cold" not in result and result["never_trained_items"] == 0
    same_metrics(result["warm"], plain(ctx, toy))
