"""The epoch log: a resume keeps every epoch's record exactly once."""

from __future__ import annotations

import json

from recscale.train.epoch_log import trim_metrics


def test_trim_metrics_keeps_each_epoch_up_to_the_checkpoint_once(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (1, 2, 3)) + '{"epo')
    trim_metrics(log, 2)  # epoch 3 (logged, not checkpointed) and a torn line go
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [1, 2]
    trim_metrics(log, 2)
    assert [json.loads(x)["epoch"] for x in log.read_text().splitlines()] == [1, 2]
