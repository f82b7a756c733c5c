"""Real ``recscale sweep`` processes sharing one directory: each run trained once, a killed
worker's run taken over and resumed, the same results table as one process writes."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from recscale.scaling.sweep import run_sweep
from tests.scaling.sweeps import (
    claims,
    comparable,
    epochs_logged,
    one_thread,
    start_sweep,
    tiny_sweep,
    wait_for_epochs,
)


@pytest.mark.slow
def test_three_processes_at_once_train_each_run_once(tmp_path: Path):
    spec = tiny_sweep(tmp_path / "spec")
    shared = tmp_path / "shared"
    procs = [start_sweep(spec, shared, log=tmp_path / f"w{i}.log") for i in range(3)]
    with one_thread():  # meanwhile, the reference: one process alone, as the workers run
        alone = run_sweep(spec, tmp_path / "alone", progress=False)
    codes = [p.wait(timeout=240) for p in procs]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(3)]
    assert codes == [0, 0, 0], logs
    assert alone.finished == 6 and not alone.failed
    names = [f"layers{n}-dim{d}" for n, d in [(1, 8), (1, 12), (1, 16), (2, 8), (2, 12), (2, 16)]]
    trainers = set()
    for name in names:
        assert epochs_logged(shared, name) == [1, 2], name
        [claim] = claims(shared, name)  # one claim trained it, nobody took it over
        assert claim["took_over"] is None
        trainers.add(claim["pid"])
    assert trainers <= {p.pid for p in procs}
    assert comparable(shared).equals(comparable(tmp_path / "alone"))
    for log in logs:  # every process wrote the same table once all runs were done
        assert "results:" in log and "(6 finished, 0 failed)" in log


@pytest.mark.slow
def test_a_killed_workers_run_is_taken_over_and_resumed(tmp_path: Path):
    spec = tiny_sweep(tmp_path / "spec", epochs=6, users=300, sizes=[(2, 16)])
    out, run = tmp_path / "shared", "layers2-dim16"
    first = start_sweep(spec, out, log=tmp_path / "first.log")
    wait_for_epochs(out, run, 2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    before = epochs_logged(out, run)
    assert 2 <= len(before) < 6 and not (out / "runs" / run / "final.json").exists()
    logged = (out / "runs" / run / "metrics.jsonl").read_text().splitlines()

    second = start_sweep(spec, out, log=tmp_path / "second.log")
    assert second.wait(timeout=240) == 0, (tmp_path / "second.log").read_text()
    assert epochs_logged(out, run) == [1, 2, 3, 4, 5, 6]
    after = (out / "runs" / run / "metrics.jsonl").read_text().splitlines()
    # Resumed, not restarted: epoch 1 (checkpointed before epoch 2 was logged) is the killed
    # worker's line, byte for byte. An epoch logged but not yet checkpointed when the kill
    # came was trimmed and trained again, to the same numbers.
    assert after[0] == logged[0]
    assert [without_wall_time(x) for x in after[: len(logged)]] == list(
        map(without_wall_time, logged)
    )
    killed, taker = claims(out, run)
    assert killed["pid"] == first.pid and taker["pid"] == second.pid
    assert taker["took_over"] == f"pid {first.pid} on {killed['host']}"
    assert "taking over from" in (tmp_path / "second.log").read_text()


def without_wall_time(line: str) -> dict:
    record = json.loads(line)
    record.pop("wall_time_s")
    return record
