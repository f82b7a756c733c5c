"""The chunked evaluator against brute-force full-matrix references."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recscale.data.dataset import SequenceDataset
from recscale.data.splits import EvalSet
from recscale.eval.evaluator import evaluate, history_excluded
from recscale.eval.metrics import MetricSums, ranks_from_scores
from recscale.eval.protocols import parse_protocol, sampled_candidates
from tests.fakes import LastItemModel


def make_eval_set(seqs: list[list[int]], targets: list[int], num_items: int) -> EvalSet:
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.array([i for s in seqs for i in s], dtype=np.int64)
    ds = SequenceDataset(
        name="toy",
        offsets=offsets,
        items=items,
        num_items=num_items,
        user_ids=np.array([f"u{i}" for i in range(len(seqs))]),
        item_ids=np.array([""] + [f"i{i}" for i in range(1, num_items + 1)]),
    )
    users = np.arange(100, 100 + len(seqs), dtype=np.int64)
    return EvalSet(ds, np.array(targets, dtype=np.int64), users)


def random_eval_set(num_users: int, num_items: int, seed: int, max_hist: int = 12) -> EvalSet:
    rng = np.random.default_rng(seed)
    seqs = [
        rng.integers(1, num_items + 1, size=rng.integers(1, max_hist)).tolist()
        for _ in range(num_users)
    ]
    targets = rng.integers(1, num_items + 1, size=num_users).tolist()
    # Some targets repeat a history item: they must stay candidates.
    for s, i in zip(seqs[::4], range(0, num_users, 4), strict=False):
        targets[i] = s[0]
    return make_eval_set(seqs, targets, num_items)


def brute_ranks(
    model, es: EvalSet, max_len: int, exclude_history: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ranks from the full [U, num_items + 1] matrix, and full-softmax cross-entropy."""
    ranks, losses = [], []
    for u in range(len(es)):
        seq = es.histories.sequence(u)
        items = torch.tensor(seq[-max_len:]).unsqueeze(0)
        h = model.encode(items, None, torch.tensor([items.shape[1]]))[0, -1]
        scores = (model.query_vectors(h) @ model.item_vectors().T).detach()
        target = int(es.targets[u])
        logits = scores[1:] / model.temperature
        losses.append(float(torch.logsumexp(logits, 0) - logits[target - 1]))
        scores[0] = -math.inf
        if exclude_history:
            hist = [i for i in set(seq.tolist()) if i != target]
            scores[hist] = -math.inf
        ranks.append(int(ranks_from_scores(scores.unsqueeze(0), target)[0]))
    return torch.tensor(ranks), torch.tensor(losses, dtype=torch.float64)


def expected_sums(ranks: torch.Tensor, losses: torch.Tensor, ks) -> dict[str, float]:
    sums = MetricSums()
    sums.add_ranks(ranks, ks)
    sums.add("loss", losses)
    return sums.to_dict()


@pytest.mark.parametrize("integer", [True, False])
@pytest.mark.parametrize("protocol", ["full", "full-no-exclude"])
@pytest.mark.parametrize("item_chunk,batch_size", [(7, 5), (13, 3), (10_000, 64)])
def test_chunked_full_ranking_equals_brute_force(integer, protocol, item_chunk, batch_size):
    num_items, max_len = 40, 6
    model = LastItemModel(num_items, 4, seed=1, integer=integer)
    es = random_eval_set(37, num_items, seed=2)
    # Every cut-off 1..num_items pins down the multiset of ranks exactly.
    ks = range(1, num_items + 1)
    got = evaluate(
        model, es, protocol, max_len=max_len, batch_size=batch_size, ks=ks, item_chunk=item_chunk
    ).to_dict()
    ranks, losses = brute_ranks(model, es, max_len, exclude_history=protocol == "full")
    want = expected_sums(ranks, losses, ks)
    assert got.keys() == want.keys()
    for name in set(want) - {"loss"}:
        assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)


def test_history_exclusion_by_hand():
    # One-hot items: the query is the last item's vector, which scores 1 only against itself.
    model = LastItemModel(5, 5)
    with torch.no_grad():
        model.emb.weight.copy_(torch.cat([torch.zeros(1, 5), torch.eye(5)]))
    es = make_eval_set([[1, 2], [3, 3]], targets=[4, 3], num_items=5)
    got = evaluate(model, es, "full", max_len=10, ks=(1, 5), compute_loss=False).to_dict()
    # User 0: items 1, 2 are history; items 3, 5 tie the target at 0: rank 3 (ties pessimistic).
    # User 1: target 3 was consumed before and scores 1: still a candidate, rank 1.
    assert got["mrr"] == pytest.approx((1 / 3 + 1) / 2)
    assert got["hr@1"] == 0.5
    no_ex = evaluate(
        model, es, "full-no-exclude", max_len=10, ks=(1,), compute_loss=False
    ).to_dict()
    # Without exclusion item 2 (score 1) and items 1, 3, 5 (ties) all beat user 0's target.
    assert no_ex["mrr"] == pytest.approx((1 / 5 + 1) / 2)


def test_window_exclusion_drops_only_the_input_window():
    model = LastItemModel(6, 6)
    with torch.no_grad():
        model.emb.weight.copy_(torch.cat([torch.zeros(1, 6), torch.eye(6)]))
        model.emb.weight[1:3] += model.emb.weight[3]  # items 1, 2 beat the others for query 3
    es = make_eval_set([[1, 2, 3]], targets=[5], num_items=6)
    kw = dict(max_len=1, ks=(1,), compute_loss=False)
    full = evaluate(model, es, "full", **kw).to_dict()["mrr"]
    window = evaluate(model, es, "full-window", **kw).to_dict()["mrr"]
    assert full == pytest.approx(1 / 3)  # candidates 4, 5, 6 tie at 0
    assert window == pytest.approx(1 / 5)  # items 1, 2 (outside the window) and 4, 6 count


def test_history_exclusion_keeps_a_consumed_target_a_candidate():
    # The generative task removes these items from its beams: the list must never hold the
    # target, whatever the protocol, or a repeat consumption could never be retrieved.
    es = make_eval_set([[1, 2, 4], [3, 3]], targets=[4, 3], num_items=5)
    rows, targets = np.array([0, 1]), torch.tensor([4, 3])
    window = torch.tensor([[2, 4], [3, 3]])
    full = history_excluded(es.histories, rows, window, targets, parse_protocol("full"))
    assert [sorted(set(r.tolist()) - {0}) for r in full] == [[1, 2], []]
    only = history_excluded(es.histories, rows, window, targets, parse_protocol("full-window"))
    assert [sorted(set(r.tolist()) - {0}) for r in only] == [[2], []]
    kept = parse_protocol("full-no-exclude")
    assert history_excluded(es.histories, rows, window, targets, kept) is None


def test_collapsed_or_diverged_model_scores_worst():
    model = LastItemModel(30, 4)
    es = random_eval_set(9, 30, seed=3)
    with torch.no_grad():
        model.emb.weight[1:] = 1.0  # every item scores the same
    assert evaluate(model, es, "full-no-exclude", max_len=4, ks=(10,)).to_dict()["hr@10"] == 0
    with torch.no_grad():
        model.emb.weight[1:] = float("nan")
    got = evaluate(model, es, "full", max_len=4, ks=(10,)).to_dict()
    assert got["hr@10"] == 0 and math.isnan(got["loss"])


def test_sampled_protocol_matches_brute_force():
    num_items, max_len = 60, 5
    model = LastItemModel(num_items, 6, seed=3)
    es = random_eval_set(23, num_items, seed=4)
    p = parse_protocol("sampled-20", seed=11)
    got = evaluate(model, es, p, max_len=max_len, batch_size=4, ks=(1, 5, 10)).to_dict()
    rows = np.arange(len(es))
    cand = torch.from_numpy(
        sampled_candidates(
            [es.histories.sequence(u) for u in rows], es.targets, es.users, num_items, p
        )
    )
    ranks = []
    for u in rows:
        items = torch.tensor(es.histories.sequence(u)[-max_len:]).unsqueeze(0)
        q = model.encode(items)[0, -1]
        ranks.append(int(ranks_from_scores((model.item_vectors(cand[u]) @ q).unsqueeze(0), 0)[0]))
    _, losses = brute_ranks(model, es, max_len, exclude_history=False)
    want = expected_sums(torch.tensor(ranks), losses, (1, 5, 10))
    assert got == pytest.approx(want)
    # Batch size and sharding change nothing.
    again = evaluate(model, es, p, max_len=max_len, batch_size=7, ks=(1, 5, 10)).to_dict()
    assert again == pytest.approx(got)


def test_shards_sum_to_the_whole():
    model = LastItemModel(30, 4, seed=5)
    es = random_eval_set(19, 30, seed=6)
    for protocol in ("full", "sampled-10"):
        whole = evaluate(model, es, protocol, max_len=4, batch_size=4)
        parts = [
            evaluate(model, es, protocol, max_len=4, batch_size=3, rank=r, world_size=3)
            for r in range(3)
        ]
        merged = parts[0].merge(parts[1]).merge(parts[2])
        assert merged.counts["hr@10"] == 19
        assert merged.to_dict() == pytest.approx(whole.to_dict())


def test_restores_training_mode_and_needs_no_grad():
    model = LastItemModel(10, 3)
    model.train()
    es = random_eval_set(5, 10, seed=0)
    sums = evaluate(model, es, "full", max_len=3)
    assert model.training
    assert set(sums.to_dict()) >= {"hr@1", "ndcg@200", "mrr", "loss"}


def test_with_a_real_backbone():
    from recscale.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig()
    num_items = 50
    model = build_model(cfg, num_items)
    es = random_eval_set(17, num_items, seed=7, max_hist=30)
    ks = range(1, num_items + 1)
    got = evaluate(
        model, es, "full", max_len=cfg.max_len, batch_size=5, ks=ks, item_chunk=16
    ).to_dict()
    model.eval()
    with torch.no_grad():
        ranks, losses = brute_ranks(model, es, cfg.max_len, exclude_history=True)
    want = expected_sums(ranks, losses, ks)
    for name in set(want) - {"loss"}:
        assert got[name] == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
    assert got["loss"] == pytest.approx(want["loss"], rel=1e-5)


MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import numpy as np, torch
    sys.path.insert(0, {tests!r})
    from test_evaluator import LastItemModel, random_eval_set
    from recscale.eval.evaluator import evaluate

    torch.set_num_threads(4)
    num_items = 1_000_000
    model = LastItemModel(num_items, 8, seed=0)
    es = random_eval_set(300, num_items, seed=1, max_hist=50)
    sums = evaluate(model, es, "full", max_len=50, batch_size=128)
    out = sums.to_dict()
    assert sums.counts["hr@10"] == 300 and np.isfinite(out["loss"]), out
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


@pytest.mark.slow
def test_million_item_catalogue_stays_under_2_gib(tmp_path):
    from pathlib import Path

    script = MEMORY_SCRIPT.format(tests=str(Path(__file__).parent))
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    peak_kib = int(result.stdout.strip().splitlines()[-1])
    assert peak_kib < 2 * 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_loss_is_full_softmax_cross_entropy():
    model = LastItemModel(8, 3, seed=9)
    es = make_eval_set([[1, 2, 3]], targets=[5], num_items=8)
    got = evaluate(model, es, "sampled-3", max_len=2).to_dict()["loss"]
    h = model.encode(torch.tensor([[2, 3]]))[0, -1].detach()
    logits = (model.item_vectors()[1:].detach() @ h / model.temperature).unsqueeze(0)
    assert got == pytest.approx(float(F.cross_entropy(logits, torch.tensor([4]))), rel=1e-6)


def test_bad_cutoffs_are_user_errors():
    from recscale.errors import RecscaleError

    model = LastItemModel(5, 2)
    es = random_eval_set(3, 5, seed=0)
    with pytest.raises(RecscaleError, match="ks must be"):
        evaluate(model, es, "full", max_len=2, ks=(0, 10))


def test_filter_seen_protocol_drops_users_whose_target_is_in_their_history():
    from recscale.eval.evaluator import targets_in_history, user_ranks

    es = random_eval_set(num_users=30, num_items=25, seed=3)
    seen = np.array([t in es.histories.sequence(u) for u, t in enumerate(es.targets)])
    assert seen.any() and not seen.all()
    assert (targets_in_history(es) == seen).all()
    model = LastItemModel(25, 6)
    ranks, _ = brute_ranks(model, es, max_len=20, exclude_history=True)
    kept = np.flatnonzero(~seen)
    got = evaluate(model, es, "full-filter-seen", max_len=20, ks=(1, 5, 10), item_chunk=7)
    sums = MetricSums()
    sums.add_ranks(ranks[kept], (1, 5, 10))
    want = sums.to_dict()
    assert got.counts["hr@10"] == len(kept)
    for key, value in want.items():
        assert got.to_dict()[key] == pytest.approx(value)
    # Rows still index the whole eval set, so per-user results line up with its users.
    per_user, _ = user_ranks(model, es, "full-filter-seen", max_len=20, batch_size=4)
    assert (per_user[seen] == 0).all()
    assert per_user[kept].tolist() == ranks[kept].tolist()
    assert parse_protocol("full-filter-seen").to_dict()["drop_seen_targets"] is True


def test_filter_seen_cold_also_drops_targets_that_are_in_nobodys_history():
    from recscale.eval.evaluator import kept_rows

    rng = np.random.default_rng(4)
    # Histories use items 1..30; targets 31..40 were never trained on (cold).
    seqs = [rng.integers(1, 31, size=rng.integers(1, 8)).tolist() for _ in range(40)]
    targets = rng.integers(1, 41, size=40).tolist()
    targets[0] = seqs[0][0]  # seen and warm
    targets[1] = 35  # cold
    es = make_eval_set(seqs, targets, 40)
    in_history = np.isin(es.targets, np.concatenate([np.asarray(s) for s in seqs]))
    seen = np.array([t in s for s, t in zip(seqs, targets, strict=True)])
    kept = np.flatnonzero(in_history & ~seen)
    assert 0 < len(kept) < len(es) and (~in_history).sum() > 1
    assert kept_rows(es, parse_protocol("full-filter-seen-cold")).tolist() == kept.tolist()
    assert kept_rows(es, parse_protocol("full")) is None

    model = LastItemModel(40, 6)
    ranks, _ = brute_ranks(model, es, max_len=20, exclude_history=True)
    got = evaluate(model, es, "full-filter-seen-cold", max_len=20, ks=(1, 5, 10), item_chunk=7)
    sums = MetricSums()
    sums.add_ranks(ranks[kept], (1, 5, 10))
    assert got.counts["hr@10"] == len(kept)
    for key, value in sums.to_dict().items():
        assert got.to_dict()[key] == pytest.approx(value)
