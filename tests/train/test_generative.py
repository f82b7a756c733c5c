"""The generative task end to end on ML-100K: codes from item text, training, beam-search
metrics under the run's protocol, resume and re-evaluation; bad configs refused up front."""

from __future__ import annotations

import json

import pytest
from safetensors.numpy import load_file

from recscale.errors import RecscaleError
from recscale.train import load_run_config, train
from recscale.train.runs import evaluate_run


def generative_config(*extra: str):
    return load_run_config(
        overrides=[
            "task=generative",
            "data.name=ml-100k",
            "model.backbone=llama",
            "model.dim=16",
            "model.layers=1",
            "model.heads=2",
            "model.max_len=10",
            "model.dropout=0.1",
            "generative.levels=2",
            "generative.codebook_size=8",
            "generative.beam=12",
            "generative.valid_users=100",
            "eval.ks=[1,10]",
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
    run_dir = tmp_path_factory.mktemp("generative") / "run"
    return train(generative_config(), run_dir), run_dir


@pytest.mark.integration
def test_run_records_codes_metrics_and_facts(finished):
    result, run_dir = finished
    final = result.final
    assert final["protocol"] == "full" and final["selection"] == "best-valid-then-test"
    assert final["test"]["users"] == 943 and final["valid"]["users"] == 100
    assert set(final["test"]) >= {"hr@1", "hr@10", "ndcg@10", "mrr"}
    assert 0.0 <= final["test"]["ndcg@10"] <= final["test"]["hr@10"] <= 1.0
    assert final["facts"]["non_embedding_params"] > 0 and final["facts"]["tokens"] > 0
    codes = load_file(run_dir / "semantic_ids.safetensors")["codes"]
    assert codes.shape == (1683, 3)  # 2 k-means levels + the collision level; row 0 padding
    assert len({tuple(row) for row in codes[1:]}) == 1682  # every item its own tuple
    usage = json.loads((run_dir / "semantic_ids.json").read_text())
    assert usage["levels"] == 2 and usage["level_sizes"][:2] == [8, 8]
    assert 0.0 <= usage["collision_share"] <= 1.0
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all("valid" in r for r in log)


@pytest.mark.integration
def test_reevaluation_and_resume_reproduce_the_run(finished):
    result, run_dir = finished
    again = evaluate_run(run_dir)["metrics"]
    for name, value in result.final["test"].items():
        assert again[name] == pytest.approx(value, abs=1e-12), name
    wider = evaluate_run(run_dir, protocol="full-no-exclude")
    assert wider["protocol"] == "full-no-exclude" and wider["metrics"]["users"] == 943
    resumed = train(generative_config(), run_dir, resume=True)
    assert resumed.final == result.final


@pytest.mark.integration
def test_the_model_learns_more_than_chance(finished):
    # 1,682 items: a random top-10 hits ~0.6% of test targets.
    assert finished[0].final["test"]["hr@10"] > 3 * 10 / 1682


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.backbone=esasrec", r"cannot decode codes; allowed: gpt, hstu, llama, sasrec"),
        ("data.item_features=[text]", r"through their codes only"),
        ("eval.protocol=sampled-100", r"must rank the whole catalogue"),
        ("generative.select_metric=hr@20", r"allowed hr@1, ndcg@1, hr@10, ndcg@10"),
        ("train.precision=bf16", r"does not use train\.precision"),
    ],
)
def test_bad_generative_configs_are_refused_by_key(override, message):
    with pytest.raises(RecscaleError, match=message):
        generative_config(override)
