"""The ranking task end to end on ML-100K: it learns, records, resumes and re-evaluates."""

from __future__ import annotations

import json

import pytest

from recscale.errors import RecscaleError
from recscale.train import load_run_config, train
from recscale.train.ranking import evaluate_ranking_run
from recscale.train.runs import evaluate_run


def ranking_config(*extra: str):
    return load_run_config(
        overrides=[
            "task=ranking",
            "data.name=ml-100k",
            "model.backbone=hstu",
            "model.dim=16",
            "model.layers=1",
            "model.heads=1",
            "model.max_len=21",
            "model.dropout=0.1",
            "ranking.eval_negatives=3",
            "train.batch_size=128",
            "train.epochs=2",
            "train.progress=false",
            "train.device=cpu",
            "optim.lr=0.003",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ranking") / "run"
    return train(ranking_config(), run_dir), run_dir


def test_a_ranking_run_learns_and_records_its_protocol(finished):
    _, run_dir = finished
    final = json.loads((run_dir / "final.json").read_text())
    assert final["protocol"] == "ranking-loo-neg3"
    assert set(final["test"]) == {"auc", "gauc", "logloss"}
    assert final["test"]["auc"] > 0.7  # chance is 0.5; popularity alone gets there on ML-100K
    assert final["facts"]["non_embedding_params"] > 0 and final["facts"]["tokens"] > 0
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_evaluate_rescores_with_more_negatives_and_rejects_retrieval_protocols(finished):
    _, run_dir = finished
    again = evaluate_run(run_dir)  # the run's own protocol, through the generic entry point
    final = json.loads((run_dir / "final.json").read_text())
    assert again["metrics"]["auc"] == pytest.approx(final["test"]["auc"])
    more = evaluate_ranking_run(run_dir, protocol="ranking-loo-neg20")
    assert more["protocol"] == "ranking-loo-neg20"
    assert 0.5 < more["metrics"]["auc"] < 1
    with pytest.raises(RecscaleError, match="ranking-loo-negK"):
        evaluate_ranking_run(run_dir, protocol="full")


def test_an_interrupted_ranking_run_resumes_to_the_same_result(tmp_path, finished):
    _, straight = finished
    cut = tmp_path / "cut"
    train(ranking_config("train.epochs=1"), cut)
    resumed = train(ranking_config(), cut, resume=True)
    want = json.loads((straight / "final.json").read_text())
    assert resumed.final["test"] == pytest.approx(want["test"])


@pytest.mark.parametrize("ranker", ["target_aware", "din"])
def test_like_labels_from_ratings_train_with_interleaved_actions(tmp_path, ranker):
    cfg = ranking_config(
        "ranking.like_threshold=4",
        "ranking.negative_ratio=0",
        f"ranking.ranker={ranker}",
        "train.epochs=1",
        "ranking.scorer=mlp",
    )
    assert cfg.ranking.interleave and cfg.ranking.protocol == "ranking-loo-neg3-like4"
    result = train(cfg, tmp_path / "run")
    assert 0.0 < result.final["test"]["auc"] < 1.0
    # the held-out rated items alone: like vs not, one example per user, so no GAUC
    alone = evaluate_ranking_run(tmp_path / "run", protocol="ranking-loo-neg0-like4")
    assert set(alone["metrics"]) == {"auc", "logloss"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.backbone=gpt"], "cannot rank"),
        (["ranking.negative_ratio=0"], "no negative"),
        (["ranking.eval_negatives=0"], "needs ranking.like_threshold"),
        (["ranking.scorer=cosine"], "scorer"),
        (["ranking.ranker=xgboost"], "ranker"),
        (["ranking.select_metric=hr@10"], "select_metric"),
        (["train.precision=bf16", "train.max_tokens=1000"], "train.max_tokens, train.precision"),
    ],
)
def test_bad_ranking_configs_name_the_key(overrides, message):
    with pytest.raises(RecscaleError, match=message):
        ranking_config(*overrides)
