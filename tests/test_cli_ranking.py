"""The ranking task through the real CLI: train, evaluate, choices, and its user errors."""

from __future__ import annotations

import json

from tests.cli_harness import run_cli

CONFIG = """\
task: ranking
data: {name: ml-100k}
model: {backbone: llama, dim: 16, layers: 1, heads: 1, max_len: 21}
ranking: {eval_negatives: 2, scorer: ffn}
train: {epochs: 1, batch_size: 256, progress: false, device: cpu}
"""


def test_train_then_evaluate_a_ranking_run(tmp_path):
    (tmp_path / "rank.yaml").write_text(CONFIG)
    trained = run_cli(["train", "rank.yaml", "--out", "run"], tmp_path)
    assert trained.code == 0, trained.stderr
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["protocol"] == "ranking-loo-neg2"
    again = run_cli(["evaluate", "run", "--protocol", "ranking-loo-neg5", "--json"], tmp_path)
    assert again.code == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["protocol"] == "ranking-loo-neg5" and 0 < result["metrics"]["auc"] < 1
    bad = run_cli(["evaluate", "run", "--protocol", "sampled-100"], tmp_path)
    assert bad.code == 2 and "ranking-loo-negK" in bad.stderr


def test_choices_lists_rankers_and_scorers_and_configs_are_checked(tmp_path):
    listed = run_cli(["choices", "rankers", "--json"], tmp_path)
    assert set(json.loads(listed.stdout)["rankers"]) == {"din", "target_aware"}
    listed = run_cli(["choices", "scorers", "--json"], tmp_path)
    assert set(json.loads(listed.stdout)["scorers"]) == {"dot", "mlp", "ffn"}
    (tmp_path / "bad.yaml").write_text(CONFIG.replace("llama", "gpt"))
    bad = run_cli(["train", "bad.yaml", "--out", "run"], tmp_path)
    assert bad.code == 2 and "cannot rank" in bad.stderr and "allowed" in bad.stderr
    assert not (tmp_path / "run").exists()  # refused before any work
