"""Finished run directories: reload, re-evaluate, run a challenge task on them."""

from __future__ import annotations

import json

import pytest

from recscale.eval.tasks import saved_result
from recscale.train.runs import run_task
from tests.train.test_trainer import tiny_config, write_sequences


def test_run_task_on_a_trained_run_writes_its_result(tmp_path):
    from recscale.train import train

    data = write_sequences(tmp_path / "cycle.txt")
    train(tiny_config(data, "train.epochs=1"), tmp_path / "run")
    result = run_task(tmp_path / "run", "noise", ["rates=0,0.3", "modes=replace"])
    saved = json.loads((tmp_path / "run" / "tasks" / "noise.json").read_text())
    assert saved == json.loads(json.dumps(result))
    final = json.loads((tmp_path / "run" / "final.json").read_text())["test"]
    assert result["result"]["replace"]["0.0"]["hr@10"] == pytest.approx(final["hr@10"])
    assert result["protocol"] == "full"
    # Non-default options are never reused as the default result; defaults are, under the
    # same protocol and result format only.
    assert saved_result(tmp_path / "run", "noise", "full") is None
    default = run_task(tmp_path / "run", "noise")
    assert saved_result(tmp_path / "run", "noise", "full") == json.loads(json.dumps(default))
    assert saved_result(tmp_path / "run", "noise", "sampled-100") is None
    path = tmp_path / "run" / "tasks" / "noise.json"
    path.write_text(json.dumps({**default, "format": 1}))
    assert saved_result(tmp_path / "run", "noise", "full") is None
