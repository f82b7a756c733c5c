"""RunRecord: final.json round-trips byte for byte, old files read, the results row is flat."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from recscale.errors import RecscaleError
from recscale.train import train
from recscale.train.record import (
    RESULT_COLUMNS,
    RunRecord,
    ScalingFacts,
    read_run_record,
    results_row,
    write_run_record,
)
from tests.train.test_trainer import tiny_config, write_sequences

# A final.json as the trainer wrote it (tiny HSTU run, selection on valid, test tracked).
FINAL_JSON = """{
 "run": "layers1-dim8",
 "protocol": "full",
 "split": "leave_one_out",
 "selection": "best-valid-then-test",
 "select_metric": "ndcg@10",
 "best_epoch": 2,
 "seed": 0,
 "test": {
  "hr@1": 0.08,
  "hr@10": 0.52,
  "loss": 3.4002903079986573,
  "mrr": 0.20518520920980876,
  "ndcg@10": 0.25393743652878875
 },
 "stop_reason": "epochs done",
 "valid": {
  "hr@1": 0.08,
  "hr@10": 0.38,
  "loss": 3.4039495515823366,
  "mrr": 0.18701118406876918,
  "ndcg@10": 0.20233276304716624
 },
 "test_legacy_best_epoch": {
  "hr@1": 0.1,
  "hr@10": 0.54,
  "loss": 3.39,
  "mrr": 0.21,
  "ndcg@10": 0.26,
  "epoch": 1
 },
 "facts": {
  "non_embedding_params": 328,
  "embedding_params": 496,
  "flops_per_token_forward": 864,
  "flops_per_token_training": 2592,
  "tokens": 728,
  "compute_flops": 1886976,
  "train_interactions": 414,
  "data_fraction": 1.0,
  "epochs": 2,
  "steps": 8,
  "wall_time_s": 0.107,
  "peak_memory_mib": 447.9,
  "hardware": {
   "device": "cpu",
   "world_size": 1,
   "torch": "2.13.0+cpu",
   "python": "3.11.7",
   "machine": "x86_64",
   "cpu_threads": 1
  }
 }
}"""


def old_final(*drop: str, facts_drop: tuple[str, ...] = ()) -> dict:
    d = json.loads(FINAL_JSON)
    for key in drop:
        del d[key]
    for key in facts_drop:
        del d["facts"][key]
    return d


def test_to_dict_writes_the_same_json_as_the_trainer():
    record = RunRecord.from_dict(json.loads(FINAL_JSON))
    assert json.dumps(record.to_dict(), indent=1) == FINAL_JSON
    assert record.facts.peak_memory_mib == 447.9 and record.test_legacy_best_epoch["epoch"] == 1
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_old_files_without_optional_keys_read_and_write_back_unchanged():
    # peak_memory_mib came later; valid is absent without a validation split, and the legacy
    # best epoch is kept only when selection was on valid and test was tracked.
    old = old_final("valid", "test_legacy_best_epoch", facts_drop=("peak_memory_mib",))
    record = RunRecord.from_dict(old)
    assert record.valid is None and record.test_legacy_best_epoch is None
    assert record.facts.peak_memory_mib is None
    assert json.dumps(record.to_dict(), indent=1) == json.dumps(old, indent=1)


def test_the_trainer_constructor_builds_the_same_record():
    d = json.loads(FINAL_JSON)
    facts = ScalingFacts(**d["facts"])
    built = RunRecord(**{**d, "facts": facts})
    assert built == RunRecord.from_dict(d)
    assert built.to_dict()["best_epoch"] == 2
    assert replace(built, best_epoch=None).to_dict()["best_epoch"] is None  # null, not dropped


def test_missing_or_unknown_keys_name_the_file(tmp_path):
    path = tmp_path / "final.json"
    path.write_text(json.dumps(old_final("test")))
    with pytest.raises(RecscaleError, match=r"final.json: .*missing key\(s\) test"):
        read_run_record(path)
    path.write_text(json.dumps({**json.loads(FINAL_JSON), "colour": "red"}))
    with pytest.raises(RecscaleError, match=r"unknown key\(s\) colour"):
        read_run_record(tmp_path)
    bad = json.loads(FINAL_JSON)
    del bad["facts"]["tokens"]
    path.write_text(json.dumps(bad))
    with pytest.raises(RecscaleError, match=r"facts: missing key\(s\) tokens"):
        read_run_record(path)
    path.write_text("{")
    with pytest.raises(RecscaleError, match="damaged run record"):
        read_run_record(path)
    with pytest.raises(RecscaleError, match="does not exist"):
        read_run_record(tmp_path / "nope" / "final.json")


def test_write_and_read_back(tmp_path):
    record = RunRecord.from_dict(json.loads(FINAL_JSON))
    path = write_run_record(record, tmp_path)
    assert path.name == "final.json" and path.read_text() == FINAL_JSON
    assert read_run_record(tmp_path) == record


COORDS = {
    "run": "layers1-dim8",
    "backbone": "hstu",
    "layers": 1,
    "dim": 8,
    "heads": 1,
    "max_len": 12,
    "data_fraction": 1.0,
    "seed": 0,
}


def test_results_row_has_the_sweep_columns_in_order():
    record = RunRecord.from_dict(json.loads(FINAL_JSON))
    row = results_row(record, COORDS, apen=1.25)
    metrics = ["hr@1", "hr@10", "loss", "mrr", "ndcg@10"]
    assert list(row) == [*RESULT_COLUMNS, *metrics, *(f"valid_{m}" for m in metrics)]
    assert row["flops_per_token"] == 2592 and row["compute"] == 1886976.0
    assert isinstance(row["compute"], float) and row["apen"] == 1.25
    assert row["status"] == "finished" and row["best_epoch"] == 2
    assert row["valid_hr@10"] == 0.38 and row["hr@10"] == 0.52
    no_valid = RunRecord.from_dict(old_final("valid"))
    assert not any(k.startswith("valid_") for k in results_row(no_valid, COORDS))
    with pytest.raises(ValueError, match="seed"):
        results_row(record, {k: v for k, v in COORDS.items() if k != "seed"})


def test_a_trained_run_writes_a_record(tmp_path):
    data = write_sequences(tmp_path / "cycle.txt")
    result = train(tiny_config(data), tmp_path / "run")
    text = (tmp_path / "run" / "final.json").read_text()
    record = read_run_record(tmp_path / "run")
    assert json.dumps(record.to_dict(), indent=1) == text
    assert record.to_dict() == result.final
